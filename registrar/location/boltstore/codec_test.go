package boltstore

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location"
)

func sampleBindings() []location.Binding {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	return []location.Binding{
		{AOR: "sip:alice@example.com", Contact: "<sip:alice@10.0.0.5:5070;transport=tcp>", Q: 700, Expires: t0.Add(time.Hour),
			CallID: "c1@host", CSeq: 42, Instance: "<urn:uuid:0001>", RegID: 1, Transport: "TCP", Source: "10.0.0.5:40312",
			UserAgent: "Linphone/5.1", Updated: t0},
		{AOR: "sip:alice@example.com", Contact: "sip:alice@[2001:db8::1]:5060", Expires: t0, CallID: "c2", Transport: "UDP",
			Source: "[2001:db8::1]:5060", Updated: t0},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	want := sampleBindings()
	got, err := decode("sip:alice@example.com", encode(want))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !got[i].Expires.Equal(want[i].Expires) || !got[i].Updated.Equal(want[i].Updated) {
			t.Fatalf("binding %d: times %v %v, want %v %v", i, got[i].Expires, got[i].Updated, want[i].Expires, want[i].Updated)
		}
		got[i].Expires, got[i].Updated = want[i].Expires, want[i].Updated
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// Values written as JSON by earlier versions are still read.
func TestCodecReadsJSON(t *testing.T) {
	want := sampleBindings()
	v, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode("sip:alice@example.com", v)
	if err != nil || len(got) != 2 || got[0].Contact != want[0].Contact || !got[1].Updated.Equal(want[1].Updated) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestCodecRejectsDamage(t *testing.T) {
	v := encode(sampleBindings())
	for _, bad := range [][]byte{{}, {9}, v[:len(v)/2], v[:len(v)-1], {codecV1, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, err := decode("sip:a@b", bad); err == nil {
			t.Errorf("decode(%x) gave no error", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(sampleBindings()))
	f.Fuzz(func(t *testing.T, v []byte) {
		bs, err := decode("sip:a@b", v)
		if err != nil || v[0] == '[' {
			return
		}
		// What decodes encodes to a value that decodes the same.
		again, err := decode("sip:a@b", encode(bs))
		if err != nil || len(again) != len(bs) {
			t.Fatalf("re-encoded %d bindings decode as %d: %v", len(bs), len(again), err)
		}
	})
}
