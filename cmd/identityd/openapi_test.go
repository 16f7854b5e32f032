package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIListsOnlyServedRoutes keeps openapi.yaml honest: every
// documented operation reaches a handler of the running service (no
// "route not found", no 405).
func TestOpenAPIListsOnlyServedRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../openapi.yaml")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	require.NotEmpty(t, doc.Paths)

	s := startService(t, baseEnv(t))
	for path, ops := range doc.Paths {
		for method := range ops {
			method = strings.ToUpper(method)
			if method == "PARAMETERS" {
				continue
			}
			url := s.baseURL + strings.ReplaceAll(path, "{id}", "01900000-0000-7000-8000-000000000000")
			req, err := http.NewRequest(method, url, strings.NewReader("{}"))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			var problem struct{ Detail string }
			_ = json.NewDecoder(res.Body).Decode(&problem)
			res.Body.Close()
			require.NotEqual(t, http.StatusMethodNotAllowed, res.StatusCode, "%s %s", method, path)
			require.False(t, res.StatusCode == http.StatusNotFound && strings.HasPrefix(problem.Detail, "route "),
				"%s %s is documented but not served", method, path)
		}
	}
}
