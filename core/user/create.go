package user

import (
	"context"

	"github.com/ghasi-ehealth/identity-service/core"
)

// CreateInput is an admin's request to create a user (POST /users).
type CreateInput struct {
	// TenantID is the user's tenant; empty means the caller's own tenant.
	TenantID  string
	Email     string
	FirstName string
	LastName  string
	// Password optionally sets the first password; without it the user
	// sets one when verifying the email.
	Password *string
}

// RegisterInput is a self-registration (POST /auth/register).
type RegisterInput struct {
	TenantID  string
	Email     string
	Password  string
	FirstName string
	LastName  string
}

// Create adds a user in status pending_verification, stores a verification
// token and emits identity.user.registered.v1 carrying the verification link,
// all in one transaction. The password, when given, is hashed before the
// transaction starts.
//
// Authorization: TENANT_ADMIN of the tenant or SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT (a TENANT_ADMIN of another
// tenant) or IDENT_FORBIDDEN (not an admin), checked before the input;
// IDENT_VALIDATION with Fields (tenantId, email, firstName, lastName,
// password); IDENT_NOT_FOUND when the tenant does not exist (SUPER_ADMIN);
// IDENT_EMAIL_DUPLICATE when the email is taken in the tenant, also when two
// creates race; IDENT_OVERLOADED from the hasher; IDENT_UNAVAILABLE.
func (s *Service) Create(ctx context.Context, in CreateInput) (User, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return User{}, err
	}
	if in.TenantID == "" {
		in.TenantID = acc.Principal.TenantID
	}
	if err := acc.CanAdminister(in.TenantID); err != nil {
		return User{}, err
	}
	u, err := s.validateNew(in.TenantID, in.Email, in.FirstName, in.LastName, in.Password, false)
	if err != nil {
		return User{}, err
	}
	if _, err := s.store.TenantSettings(ctx, u.TenantID); err != nil {
		if core.IsKind(err, core.KindNotFound) {
			return User{}, core.NotFound("tenant")
		}
		return User{}, err
	}
	return s.createPending(ctx, u, in.Password)
}

// Register is self-registration: it creates a pending_verification user with
// a password and emits identity.user.registered.v1 for the communication
// service to mail the verification link. No principal is needed.
//
// An unknown tenant answers IDENT_REGISTRATION_DISABLED, exactly like a tenant
// that does not allow self-registration, so the endpoint does not reveal
// which tenant ids exist.
//
// Errors: IDENT_VALIDATION with Fields (tenantId, email, firstName, lastName,
// password — required here); IDENT_REGISTRATION_DISABLED (403);
// IDENT_EMAIL_DUPLICATE; IDENT_OVERLOADED; IDENT_UNAVAILABLE.
func (s *Service) Register(ctx context.Context, in RegisterInput) (User, error) {
	password := in.Password
	u, err := s.validateNew(in.TenantID, in.Email, in.FirstName, in.LastName, &password, true)
	if err != nil {
		return User{}, err
	}
	settings, err := s.store.TenantSettings(ctx, u.TenantID)
	if err != nil && !core.IsKind(err, core.KindNotFound) {
		return User{}, err
	}
	if err != nil || !settings.SelfRegistration {
		return User{}, core.E(core.KindForbidden, core.CodeRegistrationDisabled, "this tenant does not allow self-registration")
	}
	return s.createPending(ctx, u, &password)
}

// validateNew normalises and checks the fields of a new user, reporting every
// bad field at once.
func (s *Service) validateNew(tenantID, email, firstName, lastName string, password *string, passwordRequired bool) (User, error) {
	u := User{
		TenantID:  tenantID,
		Email:     NormalizeEmail(email),
		FirstName: NormalizeName(firstName),
		LastName:  NormalizeName(lastName),
	}
	fields := map[string]string{}
	switch {
	case u.TenantID == "":
		fields["tenantId"] = "required"
	case !core.ValidID(u.TenantID):
		fields["tenantId"] = "must be a UUID"
	}
	if !ValidEmail(u.Email) {
		fields["email"] = "must be a valid email address"
	}
	if !ValidName(u.FirstName) {
		fields["firstName"] = "must be 1 to 100 characters, no control characters"
	}
	if !ValidName(u.LastName) {
		fields["lastName"] = "must be 1 to 100 characters, no control characters"
	}
	if password == nil || (*password == "" && passwordRequired) {
		if passwordRequired {
			fields["password"] = "required"
		}
	} else if err := s.checkPassword(*password, u.Email, u.FirstName, u.LastName); err != nil {
		ce := core.AsError(err)
		if ce.Code != core.CodeValidation {
			return User{}, err
		}
		reason := ce.Fields["password"]
		if reason == "" {
			reason = ce.Msg
		}
		fields["password"] = reason
	}
	if len(fields) > 0 {
		return User{}, core.Invalid("invalid user", fields)
	}
	return u, nil
}

// createPending stores u as pending_verification with a fresh verification
// token and the registered event in one transaction. The password is hashed
// first, outside the transaction (argon2id must not hold locks).
func (s *Service) createPending(ctx context.Context, u User, password *string) (User, error) {
	// Cheap pre-check so a duplicate does not cost a hash; the unique index
	// decides races.
	taken, err := s.store.EmailTaken(ctx, u.TenantID, u.Email)
	if err != nil {
		return User{}, err
	}
	if taken {
		return User{}, errEmailDuplicate()
	}
	if password != nil {
		if u.PasswordHash, err = s.hasher.Hash(ctx, *password); err != nil {
			return User{}, err
		}
	}
	now := s.now()
	u.ID = core.NewID()
	u.Status = StatusPendingVerification
	u.CreatedAt, u.UpdatedAt = now, now
	rec, link := s.newVerificationToken(u.ID, now)
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.InsertUser(ctx, u); err != nil {
			return err
		}
		if err := s.store.InsertVerificationToken(ctx, rec); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, registeredEvent(now, u, link, rec.ExpiresAt))
	})
	if err != nil {
		if core.CodeOf(err) == core.CodeEmailDuplicate {
			return User{}, errEmailDuplicate()
		}
		return User{}, err
	}
	return public(u), nil
}
