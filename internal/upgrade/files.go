package upgrade

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CopyTree copies the regular files under src into dst, creating
// directories as needed. Empty directories are not copied, exactly as git
// does not keep them: copying a fixture this way checks that a checkout of
// it is complete.
func CopyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// TrimWALSegments makes the etcd WAL under walDir small enough to check
// in. etcd preallocates every segment to 64 MiB of zeros and creates the
// next one ahead of time as N.tmp. TrimWALSegments deletes the *.tmp files
// (etcd makes new ones) and truncates each segment right after its last
// record. The records themselves are untouched, so the WAL reads back the
// same: etcd's reader stops at the end of the file as it stops at the first
// zero length field, and the writer appends at the end of the last record
// either way.
//
// Record framing (etcd's wal/decoder.go): an 8-byte little-endian length
// field whose low 56 bits are the record's length, and, when its top bit is
// set, bits 56..58 the padding that follows the record to an 8-byte
// boundary. A zero length field ends the records.
func TrimWALSegments(walDir string) error {
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return fmt.Errorf("trim wal: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(walDir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".tmp"):
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("trim wal: %w", err)
			}
		case strings.HasSuffix(e.Name(), ".wal"):
			end, err := walRecordsEnd(path)
			if err != nil {
				return err
			}
			if err := os.Truncate(path, end); err != nil {
				return fmt.Errorf("trim wal: %w", err)
			}
		}
	}
	return nil
}

// walRecordsEnd returns the offset just past the last record of a segment.
func walRecordsEnd(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("trim wal: %w", err)
	}
	var off int64
	for off+8 <= int64(len(b)) {
		field := binary.LittleEndian.Uint64(b[off:])
		if field == 0 {
			break
		}
		n := int64(field & (1<<56 - 1))
		if field&(1<<63) != 0 {
			n += int64(field >> 56 & 0x7)
		}
		if n < 0 || off+8+n > int64(len(b)) {
			return 0, fmt.Errorf("trim wal %s: record at %d runs past the end of the file", path, off)
		}
		off += 8 + n
	}
	if off == 0 {
		return 0, errors.New("trim wal " + path + ": no records")
	}
	return off, nil
}
