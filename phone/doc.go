// Package phone is the softphone's user agent on sipgo: it registers (and
// keeps the registration fresh), places and answers calls, and runs each
// call's audio through package media after negotiating it with package sdp.
//
// Each call is one state machine with an ID; events are reported through a
// callback so a console or a script can print them.
package phone
