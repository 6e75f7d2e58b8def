// Package media is the softphone's audio path below SIP: G.711 codecs,
// RTP packets and the jitter buffer, WAV files. It knows nothing of SIP
// or SDP: the phone hands it negotiated parameters.
//
// The per-packet path allocates nothing in steady state and never logs.
package media
