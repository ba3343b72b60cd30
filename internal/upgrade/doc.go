// Package upgrade tests that elastickv's data and clusters survive the move
// from the previous release to this binary, at the level of real processes
// (issue #14, section 6):
//
//   - A fixture: testdata/e75b20e holds a data directory (Raft WAL and
//     Pebble) written by the binary of commit OldRelease, with a golden list
//     of every key and value. The new binary must start on it, replay the
//     WAL entries its Pebble had not applied, and serve every key unchanged.
//     genfixture (run by scripts/gen-upgrade-fixture.sh) regenerates it.
//   - A rolling upgrade, from each previous release: a 3-node cluster of
//     the OldRelease binary (format 1) or of the Format2Release binary,
//     built from this repository's history, is replaced node by node with
//     the new binary under write load; while an old member remains the
//     cluster format holds and a write that needs more is refused, nothing
//     acknowledged is lost, the replicas agree, the cluster format version
//     rises once every member is new, and the old binary is then refused.
//
// The helpers here (BuildCommit, Process, FreePorts, ServerArgs) are shared
// by the tests and the generator. They never skip work the caller asked
// for: a commit missing from the history is an error (ErrCommitMissing),
// not a reason to pass.
package upgrade
