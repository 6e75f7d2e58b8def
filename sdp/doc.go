// Package sdp is SDP offer/answer for an audio softphone (RFC 3264, RFC
// 4566) on github.com/pion/sdp/v3. It is pure: no sockets, no clock, no
// randomness; session IDs come from the caller.
//
// Codecs match by encoding name and clock rate, never by payload type
// alone: dynamic payload types are taken from whoever declared them, and
// telephone-event (RFC 4733) is negotiated on whatever type the peer
// offers. The outcome of a negotiation is a [Result] that the phone turns
// into media parameters.
package sdp
