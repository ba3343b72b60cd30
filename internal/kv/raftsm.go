package kv

import (
	"io"

	"github.com/elastickv/elastickv/internal/raft"
)

// StateMachine adapts a Store to raft.StateMachine; the results it hands to
// proposers are kv.Result values.
func (s *Store) StateMachine() raft.StateMachine { return raftMachine{s} }

type raftMachine struct{ s *Store }

func (m raftMachine) Apply(ents []raft.ApplyEntry) ([]any, error) {
	kes := make([]Entry, len(ents))
	for i, e := range ents {
		kes[i] = Entry{Index: e.Index, Data: e.Data, Stamp: e.Stamp}
		if len(e.Meta) > 0 {
			kes[i].Meta = make([]MetaRecord, len(e.Meta))
			for j, r := range e.Meta {
				kes[i].Meta[j] = MetaRecord{Name: r.Name, Value: r.Value}
			}
		}
	}
	res, err := m.s.Apply(kes)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(res))
	for i := range res {
		out[i] = res[i]
	}
	return out, nil
}

func (m raftMachine) AppliedIndex() uint64 { return m.s.AppliedIndex() }

func (m raftMachine) Meta(name string) ([]byte, error) { return m.s.Meta(name) }

func (m raftMachine) Snapshot() (raft.StateSnapshot, error) { return m.s.Snapshot() }

func (m raftMachine) Restore(r io.Reader, index uint64) error { return m.s.Restore(r, index) }

func (m raftMachine) Sync() error { return m.s.Sync() }
