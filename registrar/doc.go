// Package registrar is a SIP registrar (RFC 3261 §10) and stateful forking
// proxy (RFC 3261 §16) on top of github.com/emiago/sipgo.
//
// It owns no sockets: the caller creates the listeners, wraps stream
// listeners with [Registrar.TrackFlows] so dead connections drop their
// bindings (RFC 5626 §5), and mounts the handlers on a sipgo.Server with
// [Registrar.Mount]. Bindings live in a [location.Store].
//
// What it implements:
//   - REGISTER with digest auth (RFC 7616, RFC 8760: MD5 and SHA-256,
//     qop=auth, per-challenge nonces, nonce-count replay detection),
//     several contacts per AOR, q-values, +sip.instance and reg-id
//     (RFC 5626 §6), expiry rules with 423 Interval Too Brief.
//   - Proxying with Record-Route (RFC 3261 §16.6), forking to every contact
//     in parallel, CANCEL of the other branches on the first 2xx, and best
//     response selection (RFC 3261 §16.7).
//   - Symmetric response routing (RFC 3581) and flow reuse (RFC 5626 §5.3):
//     a contact is reached through the address and connection its REGISTER
//     came from.
package registrar
