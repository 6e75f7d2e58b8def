package media

import "time"

// PopStatus says what a jitter buffer Pop produced.
type PopStatus int

// Pop results.
const (
	// Waiting: the buffer is filling up to its target delay; play silence.
	Waiting PopStatus = iota + 1
	// Ready: the payload is the next frame.
	Ready
	// Missing: the next frame never came (or came too late); conceal it.
	Missing
)

func (s PopStatus) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Ready:
		return "ready"
	case Missing:
		return "missing"
	}
	return "PopStatus(?)"
}

// JitterStats counts what a jitter buffer saw.
type JitterStats struct {
	Received   uint64 // packets pushed
	Late       uint64 // arrived after their playout time, dropped
	Duplicates uint64
	Missing    uint64 // frames played out as missing
	Dropped    uint64 // frames dropped to shrink the delay
	Target     int    // current target delay, in frames
	Jitter     float64
}

// JitterBuffer reorders the RTP payloads of one stream and releases one
// frame per Pop, at a delay that follows the measured interarrival jitter
// (RFC 3550 §6.4.1): ahead of a jittery stream it waits longer, ahead of a
// smooth one less. Late and duplicate packets are dropped. It is not safe
// for concurrent use, and Push and Pop allocate nothing once warm.
type JitterBuffer struct {
	slots     []jbSlot
	frameTS   uint32 // timestamp units per frame
	rate      float64
	min, max  int
	target    int
	next      uint64 // extended sequence number to play next
	highest   uint64 // highest extended sequence number seen
	started   bool   // a packet has arrived
	primed    bool   // playing out, rather than filling up
	lastTS    uint32
	lastRecv  time.Time
	jitter    float64 // in timestamp units
	stats     JitterStats
	overshoot int // Pops in a row with more buffered than target+1
}

type jbSlot struct {
	seq     uint64
	valid   bool
	payload []byte
}

// NewJitterBuffer makes a buffer for frames of frameTS timestamp units at
// clock rate Hz, holding between minFrames and maxFrames of delay.
func NewJitterBuffer(rate int, frameTS uint32, minFrames, maxFrames int) *JitterBuffer {
	minFrames = max(minFrames, 1)
	maxFrames = max(maxFrames, minFrames)
	size := 1
	for size < 4*maxFrames {
		size <<= 1
	}
	jb := &JitterBuffer{slots: make([]jbSlot, size), frameTS: frameTS, rate: float64(rate), min: minFrames, max: maxFrames, target: minFrames}
	for i := range jb.slots {
		jb.slots[i].payload = make([]byte, 0, 320)
	}
	return jb
}

// Reset forgets the stream, as after an SSRC change.
func (jb *JitterBuffer) Reset() {
	for i := range jb.slots {
		jb.slots[i].valid = false
	}
	jb.started, jb.primed, jb.jitter, jb.overshoot = false, false, 0, 0
	jb.target = jb.min
}

// extend maps a 16-bit sequence number to the extended number closest to
// the highest seen, which handles wraparound.
func (jb *JitterBuffer) extend(seq uint16) uint64 {
	if !jb.started {
		return 1<<16 + uint64(seq)
	}
	base := jb.highest &^ 0xFFFF
	ext := base | uint64(seq)
	switch {
	case ext+0x8000 < jb.highest:
		ext += 1 << 16
	case ext > jb.highest+0x8000 && ext >= 1<<16:
		ext -= 1 << 16
	}
	return ext
}

// Push adds a packet's payload, which it copies. arrival is when it came.
// An empty payload holds the place of a packet that is not audio: Pop
// returns it as Ready with no bytes.
func (jb *JitterBuffer) Push(seq uint16, ts uint32, payload []byte, arrival time.Time) {
	jb.stats.Received++
	ext := jb.extend(seq)
	switch {
	case !jb.started:
		jb.started, jb.next, jb.highest = true, ext, ext
		jb.lastTS, jb.lastRecv = ts, arrival
	case len(payload) > 0:
		// Interarrival jitter (RFC 3550 §6.4.1), in timestamp units. An
		// empty payload only holds a place (a DTMF event) and its
		// timestamp is not the media clock's.
		d := arrival.Sub(jb.lastRecv).Seconds()*jb.rate - float64(int32(ts-jb.lastTS))
		if d < 0 {
			d = -d
		}
		jb.jitter += (d - jb.jitter) / 16
		jb.lastTS, jb.lastRecv = ts, arrival
	}
	if ext < jb.next {
		jb.stats.Late++
		return
	}
	if ext >= jb.next+uint64(len(jb.slots)) {
		// Far ahead: a jump in the stream. Start over from here.
		jb.Reset()
		jb.started, jb.next, jb.highest = true, ext, ext
	}
	if ext > jb.highest {
		jb.highest = ext
	}
	s := &jb.slots[ext%uint64(len(jb.slots))]
	if s.valid && s.seq == ext {
		jb.stats.Duplicates++
		return
	}
	s.seq, s.valid = ext, true
	s.payload = append(s.payload[:0], payload...)
}

// buffered is how many frames are waiting, from next to the highest.
func (jb *JitterBuffer) buffered() int {
	if !jb.started || jb.highest < jb.next {
		return 0
	}
	return int(jb.highest-jb.next) + 1
}

// Pop releases the next frame. The payload is valid until the next Push.
func (jb *JitterBuffer) Pop() ([]byte, PopStatus) {
	jb.adapt()
	if !jb.primed {
		if jb.buffered() < jb.target {
			return nil, Waiting
		}
		jb.primed = true
	}
	if jb.buffered() > jb.target+1 {
		jb.overshoot++
		if jb.overshoot > 50 {
			// Too much delay for a while: skip a frame to shrink it.
			jb.take()
			jb.stats.Dropped++
			jb.overshoot = 0
		}
	} else {
		jb.overshoot = 0
	}
	if jb.buffered() == 0 {
		// Ran dry: conceal, keep our place and fill up again, a little
		// deeper, so a late frame still plays rather than being dropped.
		jb.stats.Missing++
		jb.primed = false
		jb.target = min(jb.target+1, jb.max)
		return nil, Missing
	}
	payload, ok := jb.take()
	if ok {
		return payload, Ready
	}
	jb.stats.Missing++
	return nil, Missing
}

// take returns the payload for next, if it came, and moves on.
func (jb *JitterBuffer) take() ([]byte, bool) {
	s := &jb.slots[jb.next%uint64(len(jb.slots))]
	ok := s.valid && s.seq == jb.next
	s.valid = false
	jb.next++
	if !ok {
		return nil, false
	}
	return s.payload, true
}

// adapt sets the target delay from the jitter: twice the jitter, rounded
// up to frames, plus one.
func (jb *JitterBuffer) adapt() {
	want := int(2*jb.jitter/float64(jb.frameTS)+0.999) + 1
	want = min(max(want, jb.min), jb.max)
	if want > jb.target {
		jb.target = want
	} else if want < jb.target && jb.overshoot > 25 {
		jb.target--
	}
}

// Stats returns the counters.
func (jb *JitterBuffer) Stats() JitterStats {
	st := jb.stats
	st.Target = jb.target
	st.Jitter = jb.jitter / jb.rate * 1000 // ms
	return st
}

// Conceal fills dst for the n-th missing frame in a row from last, the
// last good frame: repeated and fading by half each time, silent from the
// fourth on.
func Conceal(dst, last []int16, n int) {
	if n > 3 || len(last) != len(dst) {
		clear(dst)
		return
	}
	shift := uint(n)
	for i, v := range last {
		dst[i] = v >> shift
	}
}
