// Package digest is the server side of HTTP Digest authentication as SIP
// uses it: RFC 7616 with the SIP profile of RFC 8760 (MD5 and SHA-256,
// qop=auth).
//
// Nonces are stateless: each carries its issue time and an HMAC under the
// server's secret (RFC 7616 §3.3 leaves the format to the server), so
// servers that share the secret accept each other's nonces. What must be
// remembered is the highest nonce-count accepted per nonce (RFC 7616
// §3.4.5), kept in memory and bounded.
package digest
