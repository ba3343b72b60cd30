package main

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/cluster"
)

// refusingWriter fails every write, as stdout redirected to a full disk or
// a closed pipe does.
type refusingWriter struct{}

func (refusingWriter) Write([]byte) (int, error) {
	return 0, errors.New("no space left on device")
}

// An answer that could not be written is a failed command: a script that
// saves `admin status` to a file must not see exit status 0 and a table cut
// short.
func TestAdminStatusFailsWhenItsAnswerCannotBeWritten(t *testing.T) {
	c := cluster.New(t, 1)
	c.WaitLeader(10 * time.Second)
	args := []string{"admin", "--endpoint", c.RaftAddr(0), "status"}

	var out bytes.Buffer
	require.Equal(t, 0, run(args, &out, io.Discard))
	require.Contains(t, out.String(), "leader "+c.Name(0))

	var stderr bytes.Buffer
	require.Equal(t, 1, run(args, refusingWriter{}, &stderr))
	require.Contains(t, stderr.String(), "write answer: no space left on device")
}
