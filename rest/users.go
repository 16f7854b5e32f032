package rest

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Users is the user lifecycle as the REST transport uses it.
type Users interface {
	Create(ctx context.Context, in user.CreateInput) (user.User, error)
	Register(ctx context.Context, in user.RegisterInput) (user.User, error)
	VerifyEmail(ctx context.Context, in user.VerifyInput) (user.User, error)
	Get(ctx context.Context, id string) (user.User, error)
	List(ctx context.Context, f user.ListFilter) (user.Page, error)
	Suspend(ctx context.Context, id string) (user.User, error)
	Reactivate(ctx context.Context, id string) (user.User, error)
	Erase(ctx context.Context, id string) (user.User, error)
}

// userJSON is the contract's user shape (CONTRACT.md §4).
type userJSON struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenantId"`
	Email         string     `json:"email"`
	FirstName     string     `json:"firstName"`
	LastName      string     `json:"lastName"`
	Status        string     `json:"status"`
	CreatedAt     time.Time  `json:"createdAt"`
	DeactivatedAt *time.Time `json:"deactivatedAt,omitempty"`
}

func userOut(u user.User) userJSON {
	return userJSON{ID: u.ID, TenantID: u.TenantID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		Status: string(u.Status), CreatedAt: u.CreatedAt.UTC(), DeactivatedAt: utcPtr(u.DeactivatedAt)}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type userEnvelope struct {
	User userJSON `json:"user"`
}

func mountUsers(mux *http.ServeMux, errs Errors, svc Users) {
	mux.HandleFunc("POST /api/v1/auth/register", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			TenantID  string `json:"tenantId"`
			Email     string `json:"email"`
			Password  string `json:"password"`
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		u, err := svc.Register(r.Context(), user.RegisterInput{TenantID: in.TenantID, Email: in.Email,
			Password: in.Password, FirstName: in.FirstName, LastName: in.LastName})
		return http.StatusCreated, userEnvelope{userOut(u)}, err
	}))
	mux.HandleFunc("POST /api/v1/auth/verify-email", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Token    string  `json:"token"`
			Password *string `json:"password"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		u, err := svc.VerifyEmail(r.Context(), user.VerifyInput{Token: in.Token, Password: in.Password})
		return http.StatusOK, userEnvelope{userOut(u)}, err
	}))
	mux.HandleFunc("POST /api/v1/users", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			TenantID  string  `json:"tenantId"`
			Email     string  `json:"email"`
			FirstName string  `json:"firstName"`
			LastName  string  `json:"lastName"`
			Password  *string `json:"password"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		u, err := svc.Create(r.Context(), user.CreateInput{TenantID: in.TenantID, Email: in.Email,
			FirstName: in.FirstName, LastName: in.LastName, Password: in.Password})
		return http.StatusCreated, userOut(u), err
	})))
	mux.HandleFunc("GET /api/v1/users", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		q := r.URL.Query()
		limit := 0
		if raw := q.Get("limit"); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil {
				return 0, nil, core.InvalidField("limit", "must be an integer")
			}
			limit = n
		}
		page, err := svc.List(r.Context(), user.ListFilter{TenantID: q.Get("tenantId"), Status: user.Status(q.Get("status")),
			After: q.Get("after"), Limit: limit})
		if err != nil {
			return 0, nil, err
		}
		items := make([]userJSON, 0, len(page.Items))
		for _, u := range page.Items {
			items = append(items, userOut(u))
		}
		return http.StatusOK, newList(items, page.NextCursor), nil
	})))
	byID := func(call func(ctx context.Context, id string) (user.User, error)) http.HandlerFunc {
		return errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
			u, err := call(r.Context(), r.PathValue("id"))
			return http.StatusOK, userOut(u), err
		})
	}
	mux.HandleFunc("GET /api/v1/users/{id}", byID(svc.Get))
	mux.HandleFunc("POST /api/v1/users/{id}/suspend", byID(svc.Suspend))
	mux.HandleFunc("POST /api/v1/users/{id}/reactivate", byID(svc.Reactivate))
	mux.HandleFunc("DELETE /api/v1/users/{id}", byID(svc.Erase))
}

// authenticated answers IDENT_UNAUTHENTICATED before the body is read when
// a route that needs a caller is called without a valid credential
// (CONTRACT.md §2), instead of reporting the body's problems first.
// Authorization proper stays in core.
func authenticated(do func(w http.ResponseWriter, r *http.Request) (int, any, error)) func(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if _, err := core.RequirePrincipal(r.Context()); err != nil {
			return 0, nil, err
		}
		return do(w, r)
	}
}

// listJSON is the contract's list shape: {"items": [...], "nextCursor": "..."};
// nextCursor is null on the last page.
type listJSON[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

func newList[T any](items []T, next string) listJSON[T] {
	l := listJSON[T]{Items: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}
