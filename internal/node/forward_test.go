package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/redis"
)

func encodeCmd(c kv.Command) []byte { return c.AppendEncode(nil) }

func setCmd(k, v string) []byte {
	return encodeCmd(kv.Command{Op: kv.OpSet, Keys: [][]byte{[]byte(k)}, Values: [][]byte{[]byte(v)}})
}

func incrCmd(k string) []byte {
	return encodeCmd(kv.Command{Op: kv.OpIncrBy, Delta: 1, Keys: [][]byte{[]byte(k)}})
}

func batchCmd(subs ...[]byte) []byte {
	return encodeCmd(kv.Command{Op: kv.OpBatch, Values: subs})
}

func TestForwardBatchRequestRoundTrip(t *testing.T) {
	payloads := [][]byte{setCmd("a", "1"), incrCmd("n"), batchCmd(setCmd("b", "2"), incrCmd("n"))}
	frame := appendForwardBatchRequest(nil, groupID, payloads)
	g, got, err := decodeForwardBatchRequest(frame)
	require.NoError(t, err)
	require.Equal(t, uint64(groupID), g)
	require.Equal(t, payloads, got)

	results := []kv.Result{
		{Kind: kv.ResultOK},
		{Kind: kv.ResultInt, Int: 7},
		{Kind: kv.ResultBatch, Batch: []kv.Result{{Kind: kv.ResultNil}, {Kind: kv.ResultError, Err: "ERR x"}}},
		{Kind: kv.ResultBytes, Bytes: []byte("old")},
	}
	body := appendForwardBatchResults(nil, results)
	back, err := decodeForwardBatchResults(body, len(results))
	require.NoError(t, err)
	require.Equal(t, results, back)
}

// longVarintSet is SET k v encoded with a redundant varint byte.
func longVarintSet() []byte {
	b := setCmd("k", "v")
	return append(append(append([]byte{}, b[:5]...), 0x81, 0x00), b[6:]...)
}

// malformedBatchRequests are frames a peer might send that must be refused.
func malformedBatchRequests() map[string][]byte {
	hdr := func(rest ...byte) []byte { return append(binary.BigEndian.AppendUint64(nil, groupID), rest...) }
	withCount := func(n uint64, rest ...byte) []byte { return append(binary.AppendUvarint(hdr(), n), rest...) }
	good := setCmd("k", "v")
	oneCmd := func(p []byte) []byte {
		return append(binary.AppendUvarint(withCount(1), uint64(len(p))), p...)
	}
	tooMany := kv.Command{Op: kv.OpBatch}
	for range kv.MaxBatch {
		tooMany.Values = append(tooMany.Values, incrCmd("n"))
	}
	return map[string][]byte{
		"empty":              nil,
		"short header":       {0, 0, 0},
		"no count":           hdr(),
		"zero commands":      withCount(0),
		"count beyond frame": withCount(5, 1, 'x'),
		"huge count":         withCount(1<<62, 1, 2, 3),
		"bad varint count":   hdr(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"truncated command":  append(binary.AppendUvarint(withCount(1), 100), good...),
		"huge length":        append(binary.AppendUvarint(withCount(1), 1<<63), good...),
		"empty command":      withCount(1, 0),
		"trailing bytes":     append(oneCmd(good), 0xAA),
		"garbage command":    oneCmd([]byte{0xEE, 0, 1, 2, 3}),
		"invalid command":    oneCmd(encodeCmd(kv.Command{Op: kv.OpSet, Keys: [][]byte{[]byte("k")}})),
		"nested batches":     oneCmd(batchCmd(batchCmd(good))),
		// SET k v with its key length as a two-byte varint: it decodes to
		// a valid command, but only exact encodings are proposed.
		"non-canonical command":     oneCmd(longVarintSet()),
		"non-canonical sub-command": oneCmd(batchCmd(good, longVarintSet())),
		"unknown group": append(binary.AppendUvarint(binary.AppendUvarint(
			binary.BigEndian.AppendUint64(nil, 99), 1), uint64(len(good))), good...),
		"too many sub-commands": appendForwardBatchRequest(nil, groupID,
			[][]byte{encodeCmd(kv.Command{Op: kv.OpBatch, Values: tooMany.Values[:kv.MaxBatch-1]}), good, good}),
	}
}

func TestForwardBatchRefusesMalformedFrames(t *testing.T) {
	f := &forwardServer{n: &Node{}} // no group: a valid frame would get fwdNotLeader
	for name, frame := range malformedBatchRequests() {
		t.Run(name, func(t *testing.T) {
			resp := f.forwardBatch(context.Background(), &grpcraw.Frame{Data: frame})
			require.NotEmpty(t, resp.Data)
			require.Equal(t, byte(fwdFailed), resp.Data[0], "reply %q", resp.Data)
		})
	}
	// A well-formed frame reaches the proposal step: no group here, so
	// "not leader, nothing proposed".
	resp := f.forwardBatch(context.Background(), &grpcraw.Frame{
		Data: appendForwardBatchRequest(nil, groupID, [][]byte{setCmd("a", "1"), incrCmd("n")}),
	})
	require.Equal(t, []byte{fwdNotLeader, 0, 0, 0, 0, 0, 0, 0, 0}, resp.Data)
}

func TestForwardBatchResultsRefuseMalformed(t *testing.T) {
	ok := appendForwardBatchResults(nil, []kv.Result{{Kind: kv.ResultOK}, {Kind: kv.ResultInt, Int: 3}})
	for name, tc := range map[string]struct {
		body []byte
		want int
	}{
		"empty":           {nil, 1},
		"count mismatch":  {ok, 3},
		"truncated":       {ok[:len(ok)-1], 2},
		"trailing":        {append(append([]byte{}, ok...), 0), 2},
		"bad result kind": {[]byte{1, 1, 0x7F}, 1},
		"huge length":     {binary.AppendUvarint([]byte{1}, 1<<63), 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeForwardBatchResults(tc.body, tc.want)
			require.ErrorIs(t, err, errMalformedBatch)
		})
	}
}

func TestCombineForwardedSplicesBatchesAndSplitsResults(t *testing.T) {
	a, b, c, d := setCmd("a", "1"), incrCmd("n"), setCmd("c", "3"), incrCmd("m")
	e, err := combineForwarded([][]byte{a, batchCmd(b, c), d})
	require.NoError(t, err)
	entry, err := kv.DecodeCommand(e.payload)
	require.NoError(t, err)
	require.NoError(t, entry.Validate())
	require.Equal(t, kv.OpBatch, entry.Op)
	require.Equal(t, [][]byte{a, b, c, d}, entry.Values, "one flat entry, in order")

	applied := kv.Result{Kind: kv.ResultBatch, Batch: []kv.Result{
		{Kind: kv.ResultOK}, {Kind: kv.ResultInt, Int: 1}, {Kind: kv.ResultOK}, {Kind: kv.ResultInt, Int: 9},
	}}
	got, err := e.split(applied)
	require.NoError(t, err)
	require.Equal(t, []kv.Result{
		{Kind: kv.ResultOK},
		{Kind: kv.ResultBatch, Batch: []kv.Result{{Kind: kv.ResultInt, Int: 1}, {Kind: kv.ResultOK}}},
		{Kind: kv.ResultInt, Int: 9},
	}, got)
	_, err = e.split(kv.Result{Kind: kv.ResultBatch, Batch: applied.Batch[:3]})
	require.Error(t, err)
	_, err = e.split(kv.Result{Kind: kv.ResultOK})
	require.Error(t, err)

	// A lone command, even a forwarded OpBatch, is proposed as it came.
	lone := batchCmd(a, b)
	e, err = combineForwarded([][]byte{lone})
	require.NoError(t, err)
	require.Equal(t, lone, e.payload)
	got, err = e.split(kv.Result{Kind: kv.ResultBatch, Batch: applied.Batch[:2]})
	require.NoError(t, err)
	require.Equal(t, []kv.Result{{Kind: kv.ResultBatch, Batch: applied.Batch[:2]}}, got)
}

// execCmd encodes an EXEC of one command.
func execCmd() []byte {
	return encodeCmd(*kv.NewExec(nil, nil, [][][]byte{{[]byte("INCR"), []byte("n")}}))
}

// TestCombineForwardedKeepsAnExecAlone: an EXEC is applied alone in its
// chunk, so a batch that carried one would be refused on apply and halt
// the group. A follower sends it alone (forwardShape); the leader refuses
// one that came with others rather than propose such a batch.
func TestCombineForwardedKeepsAnExecAlone(t *testing.T) {
	e, err := combineForwarded([][]byte{execCmd()})
	require.NoError(t, err)
	require.Equal(t, execCmd(), e.payload, "a lone EXEC is proposed as it came")
	for _, payloads := range [][][]byte{
		{execCmd(), setCmd("a", "1")},
		{setCmd("a", "1"), execCmd()},
		{execCmd(), execCmd()},
	} {
		_, err := combineForwarded(payloads)
		require.Error(t, err)
	}
}

func TestForwardShape(t *testing.T) {
	getset := kv.Command{Op: kv.OpSet, Flags: kv.SetGet, Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("v")}}
	for name, tc := range map[string]struct {
		cmd  kv.Command
		subs int
		solo bool
	}{
		"set":    {kv.Command{Op: kv.OpSet, Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("v")}}, 1, false},
		"getset": {getset, 1, true},
		"getdel": {kv.Command{Op: kv.OpGetDel, Keys: [][]byte{[]byte("k")}}, 1, true},
		"append": {kv.Command{Op: kv.OpAppend, Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("x")}}, 1, false},
		"exec":   {*kv.NewExec(nil, nil, [][][]byte{{[]byte("PING")}}), 1, true},
		"batch":  {kv.Command{Op: kv.OpBatch, Values: [][]byte{setCmd("a", "1"), incrCmd("n")}}, 2, false},
		"batch with getset": {kv.Command{Op: kv.OpBatch,
			Values: [][]byte{setCmd("a", "1"), encodeCmd(getset), incrCmd("n")}}, 3, true},
	} {
		t.Run(name, func(t *testing.T) {
			subs, solo := forwardShape(&tc.cmd)
			require.Equal(t, tc.subs, subs)
			require.Equal(t, tc.solo, solo)
		})
	}
}

func FuzzForwardBatchRequest(f *testing.F) {
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{setCmd("a", "1"), incrCmd("n")}))
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{batchCmd(setCmd("a", "1"), incrCmd("n")), incrCmd("m")}))
	for _, frame := range malformedBatchRequests() {
		f.Add(frame)
	}
	srv := &forwardServer{n: &Node{}}
	f.Fuzz(func(t *testing.T, frame []byte) {
		resp := srv.forwardBatch(context.Background(), &grpcraw.Frame{Data: frame})
		if len(resp.Data) == 0 || (resp.Data[0] != fwdFailed && resp.Data[0] != fwdNotLeader) {
			t.Fatalf("unexpected reply %q", resp.Data)
		}
		_, _ = decodeForwardBatchResults(frame, 2)
	})
}

// fakeLeader records the batches a batcher sends and answers them as told.
type fakeLeader struct {
	mu      sync.Mutex
	batches [][][]byte
	ctxs    []context.Context
	gate    chan struct{} // each send waits for a token (nil: no wait)
	answer  func(payloads [][]byte) ([]kv.Result, error)
}

func (l *fakeLeader) send(ctx context.Context, _ string, payloads [][]byte) ([]kv.Result, error) {
	l.mu.Lock()
	l.batches = append(l.batches, payloads)
	l.ctxs = append(l.ctxs, ctx)
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errOutcomeUnknown, ctx.Err())
		}
	}
	if l.answer != nil {
		return l.answer(payloads)
	}
	out := make([]kv.Result, len(payloads))
	for i, p := range payloads {
		out[i] = kv.Result{Kind: kv.ResultBytes, Bytes: p} // echo: each caller can check it got its own
	}
	return out, nil
}

func (l *fakeLeader) sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

func queued(b *forwardBatcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func newTestBatcher(t *testing.T, l *fakeLeader) (*forwardBatcher, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	b := newForwardBatcher(l.send, newForwardMetrics(reg))
	t.Cleanup(b.close)
	return b, reg
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestBatcherCoalescesWhileBatchesAreInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{gate: make(chan struct{})}
	b, reg := newTestBatcher(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const callers = 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	call := func(i int) {
		defer wg.Done()
		p := setCmd(fmt.Sprint("k", i), "v")
		r, err := b.do(ctx, "leader", p, 1, false)
		if err == nil && string(r.Bytes) != string(p) {
			err = fmt.Errorf("caller %d got another caller's result", i)
		}
		errs <- err
	}
	// The first maxForwardInflight callers each start a batch, held at the
	// gate; everyone after them accumulates.
	for i := range maxForwardInflight {
		wg.Add(1)
		go call(i)
		require.Eventually(t, func() bool { return l.sent() == i+1 }, 5*time.Second, time.Millisecond)
	}
	for i := maxForwardInflight; i < callers; i++ {
		wg.Add(1)
		go call(i)
	}
	require.Eventually(t, func() bool { return queued(b) == callers-maxForwardInflight }, 5*time.Second, time.Millisecond)
	close(l.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Two singles, then the rest in one batch (or two, if the second
	// sender took its share first).
	require.LessOrEqual(t, l.sent(), maxForwardInflight+2)
	h := histogram(t, reg, "elastickv_forward_batch_commands")
	require.Equal(t, uint64(l.sent()), h.GetSampleCount())
	require.Equal(t, float64(callers), h.GetSampleSum())
}

func TestBatcherRespectsLimitsAndSolo(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{gate: make(chan struct{})}
	b, _ := newTestBatcher(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	do := func(addr string, p []byte, subs int, solo bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.do(ctx, addr, p, subs, solo)
			assert.NoError(t, err)
		}()
	}
	// Occupy both senders.
	for i := range maxForwardInflight {
		do("leader", setCmd("hold", "v"), 1, false)
		require.Eventually(t, func() bool { return l.sent() == i+1 }, 5*time.Second, time.Millisecond)
	}
	// Queue, in order: 300 small commands (over the call cap), a solo
	// command, a command for another leader, a big command and a batch
	// near kv.MaxBatch sub-commands.
	order := []func(){}
	for i := range 300 {
		order = append(order, func() { do("leader", setCmd(fmt.Sprint("k", i), "v"), 1, false) })
	}
	order = append(order,
		func() { do("leader", setCmd("solo", "v"), 1, true) },
		func() { do("other", setCmd("x", "v"), 1, false) },
		func() { do("leader", setCmd("big", string(make([]byte, maxForwardBatchBytes))), 1, false) },
		func() { do("leader", incrCmd("subs"), kv.MaxBatch, false) },
	)
	for i, f := range order {
		f()
		require.Eventually(t, func() bool { return queued(b) == i+1 }, 5*time.Second, time.Millisecond)
	}
	close(l.gate)
	wg.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for _, batch := range l.batches {
		total += len(batch)
		require.LessOrEqual(t, len(batch), maxForwardBatchCalls)
		bytes := 0
		for _, p := range batch {
			bytes += len(p)
			if len(batch) > 1 {
				require.NotEqual(t, setCmd("solo", "v"), p, "a solo command travels alone")
				require.NotEqual(t, setCmd("x", "v"), p, "another leader's command is not mixed in")
				require.NotEqual(t, incrCmd("subs"), p, "the sub-command cap holds")
			}
		}
		if len(batch) > 1 {
			require.LessOrEqual(t, bytes, maxForwardBatchBytes)
		}
	}
	require.Equal(t, maxForwardInflight+len(order), total)
}

func TestBatcherNotLeaderLetsEveryCallerRetry(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{answer: func([][]byte) ([]kv.Result, error) { return nil, errNotProposed }}
	b, _ := newTestBatcher(t, l)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.do(context.Background(), "leader", setCmd("k", "v"), 1, false)
			assert.ErrorIs(t, err, errNotProposed)
		}()
	}
	wg.Wait()
}

func TestBatcherFailedBatchFailsEveryCallerWithOutcomeUnknown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{answer: func([][]byte) ([]kv.Result, error) {
		return nil, fmt.Errorf("%w: connection reset", errOutcomeUnknown)
	}}
	b, _ := newTestBatcher(t, l)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.do(context.Background(), "leader", setCmd("k", "v"), 1, false)
			assert.ErrorIs(t, err, errOutcomeUnknown)
			assert.NotErrorIs(t, err, errNotProposed)
			assert.Contains(t, outcomeError(err).Error(), "outcome unknown")
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, l.sent(), 1)
}

func TestBatcherDeadlines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{gate: make(chan struct{})}
	b, _ := newTestBatcher(t, l)

	// A caller whose context ends while its batch is in flight: outcome
	// unknown, and it keeps the deadline of the batch's latest caller.
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	long, cancelLong := context.WithTimeout(context.Background(), time.Hour)
	defer cancelLong()
	var wg sync.WaitGroup
	for i := range maxForwardInflight { // occupy both senders
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b.do(long, "leader", setCmd("hold", "v"), 1, false)
		}()
		require.Eventually(t, func() bool { return l.sent() == i+1 }, 5*time.Second, time.Millisecond)
	}
	shortErr := make(chan error, 1)
	go func() {
		_, err := b.do(short, "leader", setCmd("short", "v"), 1, false)
		shortErr <- err
	}()
	require.Eventually(t, func() bool { return queued(b) == 1 }, 5*time.Second, time.Millisecond)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := b.do(long, "leader", setCmd("long", "v"), 1, false)
		assert.NoError(t, err)
	}()
	require.Eventually(t, func() bool { return queued(b) == 2 }, 5*time.Second, time.Millisecond)
	l.gate <- struct{}{} // release one holder: its sender takes short+long
	require.Eventually(t, func() bool { return l.sent() == maxForwardInflight+1 }, 5*time.Second, time.Millisecond)
	l.mu.Lock()
	batch, bctx := l.batches[len(l.batches)-1], l.ctxs[len(l.ctxs)-1]
	l.mu.Unlock()
	require.Len(t, batch, 2)
	d, ok := bctx.Deadline()
	require.True(t, ok)
	require.Greater(t, time.Until(d), 50*time.Minute, "the batch lives as long as its latest caller")
	err := <-shortErr
	require.ErrorIs(t, err, errOutcomeUnknown)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(l.gate)
	wg.Wait()

	// A caller whose context ends while it is still queued is withdrawn:
	// never sent, safe to retry (TRYAGAIN).
	l2 := &fakeLeader{gate: make(chan struct{})}
	b2, _ := newTestBatcher(t, l2)
	for i := range maxForwardInflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b2.do(long, "leader", setCmd("hold", "v"), 1, false)
		}()
		require.Eventually(t, func() bool { return l2.sent() == i+1 }, 5*time.Second, time.Millisecond)
	}
	quick, cancelQuick := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelQuick()
	_, err = b2.do(quick, "leader", setCmd("never", "v"), 1, false)
	require.ErrorIs(t, err, errNotSent)
	require.ErrorIs(t, outcomeError(err), redis.ErrTryAgain)
	require.Equal(t, 0, queued(b2))
	close(l2.gate)
	wg.Wait()
	require.Equal(t, maxForwardInflight, l2.sent(), "the withdrawn command was never sent")
}

func TestBatcherCloseFailsQueuedAndAbortsInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := &fakeLeader{gate: make(chan struct{})} // never opened
	b := newForwardBatcher(l.send, newForwardMetrics(nil))
	errs := make(chan error, maxForwardInflight+3)
	for i := range maxForwardInflight + 3 {
		go func() {
			_, err := b.do(context.Background(), "leader", setCmd("k", "v"), 1, false)
			errs <- err
		}()
		if i < maxForwardInflight {
			require.Eventually(t, func() bool { return l.sent() == i+1 }, 5*time.Second, time.Millisecond)
		}
	}
	require.Eventually(t, func() bool { return queued(b) == 3 }, 5*time.Second, time.Millisecond)
	b.close()
	var unknown, stopped int
	for range maxForwardInflight + 3 {
		err := <-errs
		switch {
		case errors.Is(err, errOutcomeUnknown):
			unknown++
		case errors.Is(err, raft.ErrStopped):
			stopped++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	require.Equal(t, maxForwardInflight, unknown, "in flight: outcome unknown")
	require.Equal(t, 3, stopped, "queued: never sent")
	_, err := b.do(context.Background(), "leader", setCmd("k", "v"), 1, false)
	require.ErrorIs(t, err, raft.ErrStopped)
}

// startPeerServer serves desc on loopback with a forwardServer whose node
// has no group (every valid forward is "not leader").
func startPeerServer(t *testing.T, desc *grpc.ServiceDesc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpcraw.ServerOption())
	srv.RegisterService(desc, &forwardServer{n: &Node{}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String()
}

func TestForwardOverGRPC(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cmd := kv.Command{Op: kv.OpSet, Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("v")}}
	payload := cmd.AppendEncode(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("not leader", func(t *testing.T) {
		addr := startPeerServer(t, &forwardDesc)
		c := newForwardClient(4<<20, nil)
		defer c.close()
		_, err := c.forward(ctx, addr, &cmd, payload)
		require.ErrorIs(t, err, errNotProposed)
		results, err := c.sendBatch(ctx, addr, [][]byte{payload, []byte{0xEE}})
		require.Nil(t, results)
		require.ErrorIs(t, err, errOutcomeUnknown, "a refused batch fails every command")
		require.Contains(t, err.Error(), "malformed forwarded command")
	})
	t.Run("leader without ForwardBatch", func(t *testing.T) {
		legacy := forwardDesc
		legacy.Methods = []grpc.MethodDesc{forwardDesc.Methods[0]}
		require.Equal(t, "Forward", legacy.Methods[0].MethodName)
		addr := startPeerServer(t, &legacy)
		c := newForwardClient(4<<20, nil)
		defer c.close()
		// ForwardBatch is unimplemented: the single Forward answers.
		_, err := c.forward(ctx, addr, &cmd, payload)
		require.ErrorIs(t, err, errNotProposed)
		c.mu.Lock()
		_, remembered := c.legacy[addr]
		c.mu.Unlock()
		require.True(t, remembered)
	})
	t.Run("link resets every connection", func(t *testing.T) {
		// A peer (or a proxy in front of it) that accepts TCP and hangs up
		// at once: the connection never becomes ready, so the calls fail
		// without reaching a server. That must read as "nothing proposed",
		// not as an unknown outcome.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		accepted := make(chan struct{})
		go func() {
			defer close(accepted)
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				_ = conn.Close()
			}
		}()
		defer func() { _ = ln.Close(); <-accepted }()
		c := newForwardClient(4<<20, nil)
		defer c.close()
		_, err = c.forward(ctx, ln.Addr().String(), &cmd, payload)
		require.ErrorIs(t, err, errNotProposed)
		require.NotErrorIs(t, err, errOutcomeUnknown)
		_, err = c.sendBatch(ctx, ln.Addr().String(), [][]byte{payload, payload})
		require.ErrorIs(t, err, errNotProposed)
		require.NotErrorIs(t, err, errOutcomeUnknown)
		_, _, err = c.send(ctx, ln.Addr().String(), groupID, payload)
		require.ErrorIs(t, err, errNotProposed)
		// A caller whose deadline comes while its batch waits for the
		// connection was not sent either.
		for i := 0; i < 10; i++ {
			short, cancel := context.WithTimeout(ctx, time.Duration(20+20*i)*time.Millisecond)
			_, err = c.forward(short, ln.Addr().String(), &cmd, payload)
			cancel()
			require.Error(t, err)
			require.NotErrorIs(t, err, errOutcomeUnknown, "attempt %d", i)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c := newForwardClient(4<<20, nil)
		defer c.close()
		_, err = c.forward(ctx, addr, &cmd, payload)
		require.ErrorIs(t, err, errNotProposed, "never connected: nothing was sent")
	})
}
