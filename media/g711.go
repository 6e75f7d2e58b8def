package media

// G.711 (ITU-T G.711, RFC 3551 §4.5.14): PCMU is µ-law, PCMA is A-law,
// one byte per 8 kHz sample. The conversions follow the classic segment
// algorithm, so they agree bit for bit with other implementations (the
// tests check values from CPython's audioop).

const (
	ulawBias = 0x84 // added to the magnitude before segmenting, 16-bit scale
	ulawClip = 8159 // 14-bit clip
)

// ulawSegEnd and alawSegEnd are the upper bounds of the eight segments.
var (
	ulawSegEnd = [8]int32{0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF}
	alawSegEnd = [8]int32{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}
)

// Decoding tables, filled once from the bit definitions.
var ulawTable, alawTable = decodeTables()

func decodeTables() (u, a [256]int16) {
	for i := range 256 {
		u[i] = ulawDecode(byte(i))
		a[i] = alawDecode(byte(i))
	}
	return u, a
}

func segment(v int32, ends *[8]int32) int32 {
	for i, e := range ends {
		if v <= e {
			return int32(i)
		}
	}
	return 8
}

// LinearToUlaw encodes one 16-bit sample as µ-law.
func LinearToUlaw(s int16) byte {
	v := int32(s) >> 2
	mask := int32(0xFF)
	if v < 0 {
		v, mask = -v, 0x7F
	}
	v = min(v, ulawClip) + ulawBias>>2
	seg := segment(v, &ulawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	return byte((seg<<4 | (v>>(seg+1))&0xF) ^ mask)
}

func ulawDecode(u byte) int16 {
	u = ^u
	t := (int32(u&0x0F) << 3) + ulawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// UlawToLinear decodes one µ-law byte.
func UlawToLinear(u byte) int16 { return ulawTable[u] }

// LinearToAlaw encodes one 16-bit sample as A-law.
func LinearToAlaw(s int16) byte {
	v := int32(s) >> 3
	mask := int32(0xD5)
	if v < 0 {
		v, mask = -v-1, 0x55
	}
	seg := segment(v, &alawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0xF
	} else {
		a |= (v >> seg) & 0xF
	}
	return byte(a ^ mask)
}

func alawDecode(a byte) int16 {
	a ^= 0x55
	t := int32(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t = (t + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// AlawToLinear decodes one A-law byte.
func AlawToLinear(a byte) int16 { return alawTable[a] }

// Codec turns 16-bit linear samples into a payload and back.
type Codec interface {
	// EncodeTo writes the payload for pcm into dst, which must have room,
	// and returns its length. It does not allocate.
	EncodeTo(dst []byte, pcm []int16) int
	// DecodeTo writes the samples of payload into dst, which must have
	// room, and returns how many. It does not allocate.
	DecodeTo(dst []int16, payload []byte) int
	// Name is the RTP encoding name, "PCMU".
	Name() string
	// Rate is the sample rate in Hz.
	Rate() int
}

// PCMU is G.711 µ-law.
type PCMU struct{}

// PCMA is G.711 A-law.
type PCMA struct{}

var (
	_ Codec = PCMU{}
	_ Codec = PCMA{}
)

func (PCMU) Name() string { return "PCMU" }
func (PCMU) Rate() int    { return 8000 }
func (PCMA) Name() string { return "PCMA" }
func (PCMA) Rate() int    { return 8000 }

// EncodeTo implements Codec.
func (PCMU) EncodeTo(dst []byte, pcm []int16) int {
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = LinearToUlaw(s)
	}
	return len(pcm)
}

// DecodeTo implements Codec.
func (PCMU) DecodeTo(dst []int16, payload []byte) int {
	dst = dst[:len(payload)]
	for i, b := range payload {
		dst[i] = ulawTable[b]
	}
	return len(payload)
}

// EncodeTo implements Codec.
func (PCMA) EncodeTo(dst []byte, pcm []int16) int {
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = LinearToAlaw(s)
	}
	return len(pcm)
}

// DecodeTo implements Codec.
func (PCMA) DecodeTo(dst []int16, payload []byte) int {
	dst = dst[:len(payload)]
	for i, b := range payload {
		dst[i] = alawTable[b]
	}
	return len(payload)
}

// Encode is EncodeTo into a new slice.
func Encode(c Codec, pcm []int16) []byte {
	out := make([]byte, len(pcm))
	return out[:c.EncodeTo(out, pcm)]
}

// CodecByName returns the codec for an RTP encoding name, or false.
func CodecByName(name string) (Codec, bool) {
	switch name {
	case "PCMU", "pcmu":
		return PCMU{}, true
	case "PCMA", "pcma":
		return PCMA{}, true
	}
	return nil, false
}
