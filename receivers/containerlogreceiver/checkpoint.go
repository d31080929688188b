package containerlogreceiver

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkpointKey is the storage key of every file's checkpoint, written as
// one value after each batch the pipeline took (a storage client cannot
// list its keys, and one write per batch is cheaper than one per file).
const checkpointKey = "container_log.checkpoints.v1"

// checkpoint is where a file's reading resumes after a restart.
type checkpoint struct {
	key    fileKey
	offset int64
	fp     []byte
}

// encodeCheckpoints writes a version byte, then per file: dev, inode and
// offset as uvarints, the fingerprint's length and bytes.
func encodeCheckpoints(cps []checkpoint) []byte {
	b := make([]byte, 0, 1+len(cps)*(3*binary.MaxVarintLen64+1+fingerprintSize))
	b = append(b, 1)
	for _, cp := range cps {
		b = binary.AppendUvarint(b, cp.key.dev)
		b = binary.AppendUvarint(b, cp.key.ino)
		b = binary.AppendUvarint(b, uint64(cp.offset))
		b = append(b, byte(len(cp.fp)))
		b = append(b, cp.fp...)
	}
	return b
}

// decodeCheckpoints reads what encodeCheckpoints wrote; nil input is no
// checkpoint at all.
func decodeCheckpoints(b []byte) ([]checkpoint, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != 1 {
		return nil, fmt.Errorf("checkpoints: unknown version %d", b[0])
	}
	b = b[1:]
	var out []checkpoint
	for len(b) > 0 {
		var cp checkpoint
		var vals [3]uint64
		for i := range vals {
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return out, fmt.Errorf("checkpoints: entry %d is cut short", len(out))
			}
			vals[i], b = v, b[n:]
		}
		if len(b) == 0 || int(b[0]) > fingerprintSize || len(b) < 1+int(b[0]) {
			return out, fmt.Errorf("checkpoints: entry %d has a bad fingerprint", len(out))
		}
		cp.key, cp.offset = fileKey{dev: vals[0], ino: vals[1]}, int64(vals[2])
		if cp.offset < 0 {
			return out, errors.New("checkpoints: negative offset")
		}
		cp.fp = append([]byte(nil), b[1:1+int(b[0])]...)
		b = b[1+int(b[0]):]
		out = append(out, cp)
	}
	return out, nil
}
