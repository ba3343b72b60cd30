package raft

import (
	"fmt"
	"log/slog"
)

// raftLogger adapts slog to etcd raft's Logger. Raft's Fatal and Panic mark
// broken invariants of its own state; panicking is what the library expects,
// and continuing could corrupt the log.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Info(v ...any)               { r.l.Info(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Info(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Fatal(v ...any)              { r.Panic(v...) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.Panicf(f, v...) }
func (r raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	r.l.Error(s, "component", "raft")
	panic(s)
}
func (r raftLogger) Panicf(f string, v ...any) { r.Panic(fmt.Sprintf(f, v...)) }
