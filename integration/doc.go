// Package integration holds end-to-end tests: they build the real
// registrar binary and drive it with real sipp user agents on loopback.
// Scenarios are in sipp/. Run them with `make test`, which installs sipp
// (Debian package sip-tester).
package integration
