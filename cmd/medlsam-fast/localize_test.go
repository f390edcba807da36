package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
)

func TestParseOrgans(t *testing.T) {
	names := filepath.Join(t.TempDir(), "names.json")
	os.WriteFile(names, []byte(`{"1": "spleen", "5": "liver"}`), 0o644)
	cases := []struct {
		args    []string
		names   string
		want    []localize.Organ
		wantErr string
	}{
		{[]string{"5", "spleen"}, names, []localize.Organ{{Label: 5, Name: "liver"},
			{Label: 1, Name: "spleen"}}, ""},
		{[]string{"LIVER", "7"}, names, []localize.Organ{{Label: 5, Name: "liver"},
			{Label: 7}}, ""},
		{[]string{"3"}, "", []localize.Organ{{Label: 3}}, ""},
		{[]string{"pancreas"}, names, nil, `organ "pancreas"`},
		{[]string{"liver"}, "", nil, "give --label-names"},
		{nil, names, nil, "no --organs"},
	}
	for _, c := range cases {
		got, err := parseOrgans(c.args, c.names)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("parseOrgans(%v): error %v, want one containing %q", c.args, err,
					c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseOrgans(%v): %v", c.args, err)
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(c.want)
		if !bytes.Equal(a, b) {
			t.Errorf("parseOrgans(%v) = %s, want %s", c.args, a, b)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"x": "liver"}`), 0o644)
	if _, err := parseOrgans([]string{"1"}, bad); err == nil ||
		!strings.Contains(err.Error(), bad) {
		t.Errorf("bad label-name key: error %v should name the file", err)
	}
}

func TestLocalizeUsage(t *testing.T) {
	cases := [][]string{
		{},        // no query, no --save-templates
		{"q.nii"}, // no templates
		{"--template", "a:b", "--templates-file", "s", "q.nii"}, // both
		{"--template", "a:b", "--mode", "XYZ", "q.nii"},
		{"a.nii", "b.nii", "--template", "a:b"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		err := runLocalize(args, &out)
		if !errors.Is(err, errUsage) {
			t.Errorf("localize %v: %v, want a usage error", args, err)
		}
	}
}
