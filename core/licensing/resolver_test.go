package licensing_test

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

var resNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func resPtr(t time.Time) *time.Time { return &t }

// resFind returns the module with code, if present.
func resFind(mods []licensing.EffectiveModule, code string) (licensing.EffectiveModule, bool) {
	for _, m := range mods {
		if m.Code == code {
			return m, true
		}
	}
	return licensing.EffectiveModule{}, false
}

var resCatalogue = []licensing.Module{
	{Code: "platform.iam", IsAlwaysOn: true}, {Code: "platform.audit", IsAlwaysOn: true},
	{Code: "ehr.core", IsAlwaysOn: true}, {Code: "lab"}, {Code: "pharmacy"},
}

// TestResolveScopeStatusDepth covers every scope × status × depth.
func TestResolveScopeStatusDepth(t *testing.T) {
	node, ancestors := "n0", []string{"n1", "n2", "n3"}
	for _, scope := range []licensing.Scope{licensing.ScopeExact, licensing.ScopeInheritDown} {
		for _, status := range []licensing.Status{licensing.StatusTrial, licensing.StatusActive, licensing.StatusSuspended, licensing.StatusTerminated} {
			for _, depth := range []int{0, 1, 3} {
				t.Run(fmt.Sprintf("%s/%s/depth%d", scope, status, depth), func(t *testing.T) {
					src := node
					if depth > 0 {
						src = ancestors[depth-1]
					}
					a := licensing.Assignment{ID: "a1", NodeID: src, ModuleCode: "lab", Scope: scope, Status: status,
						EffectiveFrom: resNow.Add(-time.Hour), EffectiveTo: resPtr(resNow.Add(time.Hour))}
					got := licensing.Resolve(resNow, node, ancestors, []licensing.Assignment{a}, resCatalogue)
					m, ok := resFind(got, "lab")
					applies := status != licensing.StatusTerminated && (depth == 0 || scope == licensing.ScopeInheritDown)
					require.Equal(t, applies, ok)
					if !applies {
						return
					}
					require.Equal(t, licensing.EffectiveModule{Code: "lab", Status: status, Scope: scope, SourceNodeID: src,
						AssignmentID: "a1", Granted: status == licensing.StatusActive || status == licensing.StatusTrial}, m)
				})
			}
		}
	}
}

func TestResolveWindowEdges(t *testing.T) {
	cases := []struct {
		name     string
		from     time.Time
		to       *time.Time
		granted  bool
		startsIn bool
	}{
		{"from equals now", resNow, nil, true, true},
		{"from just after now", resNow.Add(time.Nanosecond), nil, false, true},
		{"to equals now", resNow.Add(-time.Hour), resPtr(resNow), false, true},
		{"to just after now", resNow.Add(-time.Hour), resPtr(resNow.Add(time.Nanosecond)), true, true},
		{"open ended", time.Time{}, nil, true, true},
	}
	for _, c := range cases {
		for _, status := range []licensing.Status{licensing.StatusActive, licensing.StatusTrial} {
			t.Run(c.name+"/"+string(status), func(t *testing.T) {
				a := licensing.Assignment{ID: "a", NodeID: "n0", ModuleCode: "lab", Scope: licensing.ScopeExact,
					Status: status, EffectiveFrom: c.from, EffectiveTo: c.to}
				m, ok := resFind(licensing.Resolve(resNow, "n0", nil, []licensing.Assignment{a}, resCatalogue), "lab")
				require.True(t, ok)
				require.Equal(t, c.granted, m.Granted)
				require.Equal(t, status, m.Status)
			})
		}
	}
}

func TestResolveDeeperWins(t *testing.T) {
	ancestors := []string{"parent", "grand"}
	at := func(id, node string, scope licensing.Scope, status licensing.Status) licensing.Assignment {
		return licensing.Assignment{ID: id, NodeID: node, ModuleCode: "lab", Scope: scope, Status: status, EffectiveFrom: resNow.Add(-time.Hour)}
	}
	t.Run("exact active overrides suspended ancestor", func(t *testing.T) {
		got := licensing.Resolve(resNow, "leaf", ancestors, []licensing.Assignment{
			at("g", "grand", licensing.ScopeInheritDown, licensing.StatusSuspended),
			at("l", "leaf", licensing.ScopeExact, licensing.StatusActive)}, resCatalogue)
		m, _ := resFind(got, "lab")
		require.Equal(t, "l", m.AssignmentID)
		require.True(t, m.Granted)
	})
	t.Run("exact suspended overrides active ancestor", func(t *testing.T) {
		got := licensing.Resolve(resNow, "leaf", ancestors, []licensing.Assignment{
			at("g", "grand", licensing.ScopeInheritDown, licensing.StatusActive),
			at("l", "leaf", licensing.ScopeExact, licensing.StatusSuspended)}, resCatalogue)
		m, _ := resFind(got, "lab")
		require.Equal(t, licensing.EffectiveModule{Code: "lab", Status: licensing.StatusSuspended, Scope: licensing.ScopeExact,
			SourceNodeID: "leaf", AssignmentID: "l"}, m)
	})
	t.Run("grandparent inherit_down reaches the node", func(t *testing.T) {
		got := licensing.Resolve(resNow, "leaf", ancestors, []licensing.Assignment{
			at("g", "grand", licensing.ScopeInheritDown, licensing.StatusActive),
			at("p", "parent", licensing.ScopeExact, licensing.StatusSuspended)}, resCatalogue)
		m, _ := resFind(got, "lab")
		require.Equal(t, "g", m.AssignmentID)
		require.True(t, m.Granted)
	})
	t.Run("terminated deeper assignment falls back to the ancestor", func(t *testing.T) {
		got := licensing.Resolve(resNow, "leaf", ancestors, []licensing.Assignment{
			at("g", "grand", licensing.ScopeInheritDown, licensing.StatusActive),
			at("l", "leaf", licensing.ScopeExact, licensing.StatusTerminated)}, resCatalogue)
		m, _ := resFind(got, "lab")
		require.Equal(t, "g", m.AssignmentID)
	})
	t.Run("unrelated nodes are ignored", func(t *testing.T) {
		got := licensing.Resolve(resNow, "leaf", ancestors, []licensing.Assignment{
			at("x", "sibling", licensing.ScopeInheritDown, licensing.StatusActive)}, resCatalogue)
		_, ok := resFind(got, "lab")
		require.False(t, ok)
	})
	t.Run("equal depth: newest wins", func(t *testing.T) {
		old := at("a", "leaf", licensing.ScopeExact, licensing.StatusSuspended)
		nw := at("b", "leaf", licensing.ScopeInheritDown, licensing.StatusActive)
		nw.CreatedAt = resNow.Add(-time.Minute)
		for _, in := range [][]licensing.Assignment{{old, nw}, {nw, old}} {
			m, _ := resFind(licensing.Resolve(resNow, "leaf", ancestors, in, resCatalogue), "lab")
			require.Equal(t, "b", m.AssignmentID)
		}
	})
}

func TestResolveAlwaysOnAndTerminatedModules(t *testing.T) {
	mods := append([]licensing.Module{{Code: "old", TerminatedAt: resPtr(resNow.Add(-time.Hour))}}, resCatalogue...)
	got := licensing.Resolve(resNow, "n", nil, []licensing.Assignment{
		{ID: "s", NodeID: "n", ModuleCode: "ehr.core", Scope: licensing.ScopeExact, Status: licensing.StatusSuspended},
		{ID: "o", NodeID: "n", ModuleCode: "old", Scope: licensing.ScopeExact, Status: licensing.StatusActive},
	}, mods)
	codes := make([]string, len(got))
	for i, m := range got {
		codes[i] = m.Code
	}
	require.Equal(t, []string{"ehr.core", "old", "platform.audit", "platform.iam"}, codes)
	require.Equal(t, licensing.EffectiveModule{Code: "ehr.core", Status: licensing.StatusSuspended, Granted: true,
		Scope: licensing.ScopeExact, SourceNodeID: "n", AssignmentID: "s"}, got[0])
	require.False(t, got[1].Granted)
	require.Equal(t, licensing.EffectiveModule{Code: "platform.iam", Status: licensing.StatusActive, Granted: true,
		Scope: licensing.ScopeInheritDown}, got[3])
	// Always-on codes are granted even when the catalogue lacks them.
	require.Len(t, licensing.Resolve(resNow, "n", nil, nil, nil), len(licensing.AlwaysOnModules))
}

// resReference is a brute-force resolver: walk up from the node and take,
// per module, the first level holding an applicable assignment.
func resReference(now time.Time, node string, ancestors []string, as []licensing.Assignment, modules []licensing.Module) []licensing.EffectiveModule {
	levels := append([]string{node}, ancestors...)
	var out []licensing.EffectiveModule
	codes := map[string]bool{}
	for _, a := range as {
		codes[a.ModuleCode] = true
	}
	for _, m := range modules {
		codes[m.Code] = true
	}
	for _, c := range licensing.AlwaysOnModules {
		codes[c] = true
	}
	for code := range codes {
		var win *licensing.Assignment
		for d, n := range levels {
			for i := range as {
				a := &as[i]
				if a.ModuleCode != code || a.NodeID != n || a.Status == licensing.StatusTerminated ||
					(d > 0 && a.Scope == licensing.ScopeExact) {
					continue
				}
				if win == nil || a.CreatedAt.After(win.CreatedAt) || (a.CreatedAt.Equal(win.CreatedAt) && a.ID > win.ID) {
					win = a
				}
			}
			if win != nil {
				break
			}
		}
		var mod *licensing.Module
		for i := range modules {
			if modules[i].Code == code {
				mod = &modules[i]
			}
		}
		always := mod != nil && mod.IsAlwaysOn
		for _, c := range licensing.AlwaysOnModules {
			always = always || c == code
		}
		switch {
		case win != nil:
			g := (win.Status == licensing.StatusActive || win.Status == licensing.StatusTrial) &&
				!now.Before(win.EffectiveFrom) && (win.EffectiveTo == nil || now.Before(*win.EffectiveTo)) &&
				(mod == nil || mod.TerminatedAt == nil)
			out = append(out, licensing.EffectiveModule{Code: code, Status: win.Status, Granted: g || always,
				Scope: win.Scope, SourceNodeID: win.NodeID, AssignmentID: win.ID})
		case always:
			out = append(out, licensing.EffectiveModule{Code: code, Status: licensing.StatusActive, Granted: true, Scope: licensing.ScopeInheritDown})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

func TestResolveMatchesReference(t *testing.T) {
	statuses := []licensing.Status{licensing.StatusTrial, licensing.StatusActive, licensing.StatusSuspended, licensing.StatusTerminated}
	codes := []string{"lab", "pharmacy", "radiology", "billing", "ehr.core", "gone"}
	for seed := int64(1); seed <= 400; seed++ {
		rng := rand.New(rand.NewSource(seed))
		n := 1 + rng.Intn(20)
		parent := make([]int, n)
		for i := range parent {
			parent[i] = -1
			if i > 0 && rng.Intn(6) > 0 {
				parent[i] = rng.Intn(i)
			}
		}
		node := rng.Intn(n)
		var ancestors []string
		for p := parent[node]; p >= 0; p = parent[p] {
			ancestors = append(ancestors, fmt.Sprintf("n%d", p))
		}
		modules := []licensing.Module{{Code: "lab"}, {Code: "pharmacy"}, {Code: "ehr.core", IsAlwaysOn: true},
			{Code: "gone", TerminatedAt: resPtr(resNow)}, {Code: "billing", IsAlwaysOn: rng.Intn(2) == 0}}
		var as []licensing.Assignment
		for i, k := 0, rng.Intn(40); i < k; i++ {
			a := licensing.Assignment{ID: fmt.Sprintf("a%02d", i), NodeID: fmt.Sprintf("n%d", rng.Intn(n)),
				ModuleCode: codes[rng.Intn(len(codes))], Status: statuses[rng.Intn(len(statuses))],
				Scope:         licensing.ScopeExact,
				EffectiveFrom: resNow.Add(time.Duration(rng.Intn(5)-3) * time.Hour),
				CreatedAt:     resNow.Add(-time.Duration(rng.Intn(3)) * time.Hour)}
			if rng.Intn(2) == 0 {
				a.Scope = licensing.ScopeInheritDown
			}
			if rng.Intn(2) == 0 {
				a.EffectiveTo = resPtr(resNow.Add(time.Duration(rng.Intn(5)-2) * time.Hour))
			}
			as = append(as, a)
		}
		want := resReference(resNow, fmt.Sprintf("n%d", node), ancestors, as, modules)
		got := licensing.Resolve(resNow, fmt.Sprintf("n%d", node), ancestors, as, modules)
		require.Equal(t, want, got, "seed %d", seed)
	}
}

func BenchmarkResolveDepth8(b *testing.B) {
	ancestors := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	codes := []string{"lab", "pharmacy", "radiology", "billing", "ehr.core"}
	as := make([]licensing.Assignment, 200)
	for i := range as {
		as[i] = licensing.Assignment{ID: fmt.Sprint(i), NodeID: ancestors[i%8], ModuleCode: codes[i%5] + fmt.Sprint(i%40),
			Scope: licensing.ScopeInheritDown, Status: licensing.StatusActive}
	}
	for b.Loop() {
		licensing.Resolve(resNow, "n0", ancestors, as, resCatalogue)
	}
}
