// Package media is RTP/RTCP, codecs, the jitter buffer, DTMF and audio
// devices. It knows nothing of SIP or SDP. It is built in a later issue;
// this file holds the place in the layout.
package media
