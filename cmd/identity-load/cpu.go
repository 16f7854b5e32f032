package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuReport splits the CPU time of a measured window between the server,
// the load tool and everything else on the machine: on a small machine
// shared by all three, a throughput number means little without it.
// Server seconds come from process_cpu_seconds_total on the public
// /metrics endpoint (absent if the server does not export it); machine
// seconds from /proc/stat (Linux only; meaningful when the server runs on
// the same machine).
type cpuReport struct {
	WindowSeconds      float64  `json:"windowSeconds"`
	Cores              int      `json:"cores"`
	ServerSeconds      *float64 `json:"serverSeconds,omitempty"`
	ToolSeconds        float64  `json:"toolSeconds"`
	MachineBusySeconds *float64 `json:"machineBusySeconds,omitempty"`
	// OtherSeconds = machine busy − server − tool (another process, the
	// database server, …); present when both are known.
	OtherSeconds *float64 `json:"otherSeconds,omitempty"`
	// ServerMicrosPerRequest = server CPU / requests in the window.
	ServerMicrosPerRequest *float64 `json:"serverMicrosPerRequest,omitempty"`
}

type cpuSample struct {
	at       time.Time
	server   float64
	serverOK bool
	tool     float64
	busy     float64
	busyOK   bool
}

func takeCPUSample(ctx context.Context, api *apiClient) cpuSample {
	s := cpuSample{at: time.Now()}
	s.server, s.serverOK = scrapeProcessCPU(ctx, api)
	s.tool = selfCPU()
	s.busy, s.busyOK = machineBusy()
	return s
}

// cpuBetween reports the CPU used between a and b; requests is the number
// of requests recorded in that window.
func cpuBetween(a, b cpuSample, requests uint64) *cpuReport {
	r := &cpuReport{WindowSeconds: b.at.Sub(a.at).Seconds(), Cores: runtime.NumCPU(), ToolSeconds: b.tool - a.tool}
	if a.serverOK && b.serverOK {
		v := b.server - a.server
		r.ServerSeconds = &v
		if requests > 0 {
			us := v / float64(requests) * 1e6
			r.ServerMicrosPerRequest = &us
		}
	}
	if a.busyOK && b.busyOK {
		v := b.busy - a.busy
		r.MachineBusySeconds = &v
		if r.ServerSeconds != nil {
			o := max(v-*r.ServerSeconds-r.ToolSeconds, 0)
			r.OtherSeconds = &o
		}
	}
	return r
}

// scrapeProcessCPU reads process_cpu_seconds_total from GET /metrics.
func scrapeProcessCPU(ctx context.Context, api *apiClient) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	res, err := api.hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, false
	}
	return parseProcessCPU(bufio.NewScanner(res.Body))
}

func parseProcessCPU(sc *bufio.Scanner) (float64, bool) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("process_cpu_seconds_total")) {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 2 || f[0] != "process_cpu_seconds_total" {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		return v, err == nil
	}
	return 0, false
}

// clockTicks is USER_HZ, the unit of /proc/stat (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// machineBusy is the machine's non-idle CPU seconds since boot from the
// "cpu" line of /proc/stat (idle and iowait excluded).
func machineBusy() (float64, bool) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseProcStat(raw)
}

func parseProcStat(raw []byte) (float64, bool) {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, false
	}
	var total, idle uint64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, false
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return float64(total-idle) / clockTicks, true
}
