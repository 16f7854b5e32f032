package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
)

// MaxBodyBytes caps every request body (CONTRACT.md §2).
const MaxBodyBytes = 1 << 20

// DecodeJSON reads r's body into dst: JSON only, UTF-8 only, at most 1 MiB,
// unknown members and trailing data rejected. Errors are IDENT_VALIDATION with the
// offending field named where the decoder knows it.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return core.Invalid("the body must be application/json", nil)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	if err := requireUTF8(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if err := decodeError(err); err != nil {
			return err
		}
		return unknownFieldError(body, dst)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return core.Invalid("the body must hold exactly one JSON value", nil)
	}
	return nil
}

// requireUTF8 refuses a body that is not UTF-8 (CONTRACT.md §2), or that
// escapes half of a UTF-16 surrogate pair on its own ("\ud800"): encoding/json
// would turn each invalid byte, and each lone surrogate, of a string into
// U+FFFD, so a value the client did not send would be validated and stored.
func requireUTF8(body []byte) error {
	if !core.ValidJSONText(body) {
		return core.Invalid("the body is not valid UTF-8", nil)
	}
	return nil
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return core.Invalid("the body is empty; a JSON object is required", nil)
	case errors.As(err, &tooLarge):
		return core.Invalid(fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes), nil)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return core.Invalid("the body is not valid JSON", nil)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return core.Invalid("the body must be a JSON object", nil)
		}
		return core.InvalidField(field, "must be a "+jsonKind(typeErr.Type.Kind().String()))
	}
	return nil // by elimination an unknown member; see unknownFieldError
}

// unknownFieldError names the members of body that dst does not declare.
// encoding/json reports them only as text, so they are found by comparing
// the body's keys with dst's json tags instead.
func unknownFieldError(body []byte, dst any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return core.Invalid("the body could not be decoded", nil)
	}
	known := map[string]bool{}
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			known[strings.ToLower(name)] = true
		}
	}
	fields := map[string]string{}
	for k := range members {
		if !known[strings.ToLower(k)] {
			fields[k] = "unknown field"
		}
	}
	if len(fields) == 0 {
		return core.Invalid("the body has an unknown member in a nested object", nil)
	}
	return core.Invalid("the body has unknown fields", fields)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	default:
		return "number"
	}
}
