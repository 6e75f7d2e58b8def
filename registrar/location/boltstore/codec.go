package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sipline/sipline/registrar/location"
)

// Bindings are stored in a small binary format, version 1, rather than
// JSON: loading 100,000 AORs at start-up took 0.7 s with encoding/json
// and the file was twice the size (docs/BENCHMARKS.md). A value is the
// version byte, then the count of bindings as a uvarint, then each
// binding's fields in the order of location.Binding, the AOR aside (it is
// the key): strings as a uvarint length and the bytes, integers as
// varints, times as varint Unix seconds and uvarint nanoseconds. Values
// written as JSON by earlier versions (they start with '[') are still
// read.
const codecV1 = 1

var errShort = errors.New("value too short")

func encode(bs []location.Binding) []byte {
	b := make([]byte, 0, 1+len(bs)*160)
	b = append(b, codecV1)
	b = binary.AppendUvarint(b, uint64(len(bs)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	tm := func(t time.Time) {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	for _, x := range bs {
		str(x.Contact)
		b = binary.AppendVarint(b, int64(x.Q))
		tm(x.Expires)
		str(x.CallID)
		b = binary.AppendUvarint(b, uint64(x.CSeq))
		str(x.Instance)
		b = binary.AppendVarint(b, int64(x.RegID))
		str(x.Transport)
		str(x.Source)
		str(x.UserAgent)
		tm(x.Updated)
	}
	return b
}

// decode returns the bindings encoded in v, a value of the bucket, which
// is only valid in its transaction; nil v gives none.
func decode(aor string, v []byte) ([]location.Binding, error) {
	switch {
	case v == nil:
		return nil, nil
	case len(v) > 0 && v[0] == '[':
		var bs []location.Binding
		if err := json.Unmarshal(v, &bs); err != nil {
			return nil, fmt.Errorf("boltstore: decode the bindings of %s: %w", aor, err)
		}
		return bs, nil
	case len(v) == 0 || v[0] != codecV1:
		return nil, fmt.Errorf("boltstore: decode the bindings of %s: unknown format", aor)
	}
	d := decoder{b: v[1:]}
	n := d.uvarint()
	if n > uint64(len(v)) { // every binding takes more than a byte
		return nil, fmt.Errorf("boltstore: decode the bindings of %s: %d bindings in %d bytes", aor, n, len(v))
	}
	bs := make([]location.Binding, n)
	for i := range bs {
		x := &bs[i]
		x.AOR = aor
		x.Contact = d.str()
		x.Q = int(d.varint())
		x.Expires = d.time()
		x.CallID = d.str()
		x.CSeq = uint32(d.uvarint())
		x.Instance = d.str()
		x.RegID = int(d.varint())
		x.Transport = d.str()
		x.Source = d.str()
		x.UserAgent = d.str()
		x.Updated = d.time()
	}
	if d.err != nil {
		return nil, fmt.Errorf("boltstore: decode the bindings of %s: %w", aor, d.err)
	}
	return bs, nil
}

// decoder reads a value, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint undoes binary.AppendVarint's zig-zag encoding.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}
