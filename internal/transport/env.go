package transport

import (
	"log/slog"
	"strconv"
	"strings"
)

// EnvDispatcherLanes is the environment variable that selects the lane
// layout: unset, empty or true selects FourLanes; false selects the legacy
// TwoLanes layout. It exists so an operator can fall back to the old
// behaviour without a rebuild.
const EnvDispatcherLanes = "ELASTICKV_RAFT_DISPATCHER_LANES"

// LaneMode selects how many outbound lanes each peer gets. The zero value is
// the default four-lane layout.
type LaneMode uint8

const (
	// FourLanes gives every peer a heartbeat, replication, snapshot and
	// other lane; heartbeat and snapshot lanes get their own connection.
	FourLanes LaneMode = iota
	// TwoLanes is the legacy layout: a heartbeat lane and one "normal" lane
	// (with its own connection) for everything else, snapshots included, so
	// a snapshot transfer stalls replication to that peer for every group.
	TwoLanes
	// laneModeSingle puts every message in one queue on one connection. It
	// exists only to measure what lanes buy (BenchmarkHeartbeatIsolation);
	// no environment value selects it.
	laneModeSingle
)

// String returns the mode's name for logs.
func (m LaneMode) String() string {
	switch m {
	case FourLanes:
		return "four-lanes"
	case TwoLanes:
		return "two-lanes"
	case laneModeSingle:
		return "single-lane"
	default:
		return "LaneMode(" + strconv.Itoa(int(m)) + ")"
	}
}

// LaneModeFromEnv reads EnvDispatcherLanes through getenv (os.Getenv in
// production, a map in tests). The value is trimmed and parsed with
// strconv.ParseBool: empty or true gives FourLanes, false gives TwoLanes,
// anything else logs a warning on log (nil means slog.Default()) and gives
// FourLanes, because a typo must not silently downgrade the node.
func LaneModeFromEnv(getenv func(string) string, log *slog.Logger) LaneMode {
	raw := strings.TrimSpace(getenv(EnvDispatcherLanes))
	if raw == "" {
		return FourLanes
	}
	on, err := strconv.ParseBool(raw)
	if err != nil {
		if log == nil {
			log = slog.Default()
		}
		log.Warn("unparseable raft dispatcher lane setting, using four lanes",
			slog.String("env", EnvDispatcherLanes), slog.String("value", raw), slog.Any("err", err))
		return FourLanes
	}
	if on {
		return FourLanes
	}
	return TwoLanes
}
