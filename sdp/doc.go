// Package sdp is pure SDP offer/answer (RFC 3264) on pion/sdp: no sockets,
// no clock, no SIP. It is built in a later issue; this file holds the
// place in the layout.
package sdp
