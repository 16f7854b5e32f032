package main

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseProcessCPU(t *testing.T) {
	metrics := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total_other 9
process_cpu_seconds_total 12.34
process_open_fds 10
`
	v, ok := parseProcessCPU(bufio.NewScanner(strings.NewReader(metrics)))
	require.True(t, ok)
	require.InDelta(t, 12.34, v, 1e-9)
	_, ok = parseProcessCPU(bufio.NewScanner(strings.NewReader("go_goroutines 3\n")))
	require.False(t, ok)
}

func TestParseProcStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	v, ok := parseProcStat([]byte("cpu  100 5 50 1000 20 3 2 10 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	require.True(t, ok)
	require.InDelta(t, float64(100+5+50+3+2+10)/clockTicks, v, 1e-9, "idle, iowait and guest time excluded")
	_, ok = parseProcStat([]byte("intr 1 2 3\n"))
	require.False(t, ok)
	_, ok = parseProcStat([]byte("cpu a b c d e\n"))
	require.False(t, ok)
	if b, ok := machineBusy(); ok {
		require.Positive(t, b)
	}
	require.GreaterOrEqual(t, selfCPU(), 0.0)
}

func TestCPUBetween(t *testing.T) {
	t0 := time.Now()
	a := cpuSample{at: t0, server: 10, serverOK: true, tool: 1, busy: 100, busyOK: true}
	b := cpuSample{at: t0.Add(2 * time.Second), server: 13, serverOK: true, tool: 2, busy: 104.5, busyOK: true}
	r := cpuBetween(a, b, 1000)
	require.InDelta(t, 2, r.WindowSeconds, 1e-9)
	require.InDelta(t, 3, *r.ServerSeconds, 1e-9)
	require.InDelta(t, 1, r.ToolSeconds, 1e-9)
	require.InDelta(t, 0.5, *r.OtherSeconds, 1e-9)
	require.InDelta(t, 3000, *r.ServerMicrosPerRequest, 1e-6)

	b.serverOK, b.busyOK = false, false
	r = cpuBetween(a, b, 1000)
	require.Nil(t, r.ServerSeconds)
	require.Nil(t, r.OtherSeconds)
	require.Nil(t, r.MachineBusySeconds)
}
