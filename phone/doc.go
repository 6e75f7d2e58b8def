// Package phone is the softphone's user agent: registration, keepalive,
// calls and dialogs on sipgo. It composes package sdp for offer/answer and
// package media for RTP. It is built in a later issue; this file holds the
// place in the layout.
package phone
