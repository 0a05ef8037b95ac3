package purchases

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Checksum is an order-independent digest of a day's content: the 128-bit sum
// of each element's SHA-256 prefix, plus the element count. The API returns
// a day's rows in a different order on every call, so a plain hash would
// differ; a sum does not, and unlike XOR it still counts duplicate lines
// (two identical purchases) instead of cancelling them.
type Checksum struct {
	hi, lo uint64
	n      int64
}

// Add folds one element, as sent by the API, into the checksum.
func (c *Checksum) Add(elem []byte) {
	h := sha256.Sum256(elem)
	var carry uint64
	c.lo, carry = bits.Add64(c.lo, binary.BigEndian.Uint64(h[8:16]), 0)
	c.hi, _ = bits.Add64(c.hi, binary.BigEndian.Uint64(h[0:8]), carry)
	c.n++
}

// Count is the number of elements added.
func (c *Checksum) Count() int64 { return c.n }

// String is the stored form, versioned so the scheme can change later.
func (c *Checksum) String() string {
	return fmt.Sprintf("v1:%d:%016x%016x", c.n, c.hi, c.lo)
}
