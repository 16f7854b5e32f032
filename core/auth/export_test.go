package auth

// Test-only access to the refresh-token parsing helpers, for the fuzz
// target in fuzz_test.go (package auth_test).

// WellFormedRefreshToken is wellFormedRefreshToken.
var WellFormedRefreshToken = wellFormedRefreshToken

// HashRefreshToken is the stored form of raw under s's refresh key.
func (s *Service) HashRefreshToken(raw string) string { return s.hashRefreshToken(raw) }

// RefreshTokenLen is the length of a refresh token's text form.
const RefreshTokenLen = refreshTokenLen
