// Package federation is OpenID Connect login through a tenant's own identity
// provider: Authorization Code with PKCE (S256), state and nonce bound to a
// single-use server-side record, ID-token verification, linking by (issuer,
// subject) or just-in-time provisioning, and a circuit breaker per provider
// (CONTRACT.md §4 /auth/oidc/{provider}/start|callback, §5
// configureOidcProvider; story IDENT-US-010).
package federation
