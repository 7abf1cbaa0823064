package search_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/search"
)

func TestParseQuery(t *testing.T) {
	v, _ := url.ParseQuery("q=+red+lamp+&category=home&min_price=0&max_price=500&in_stock=true&sort=price_desc&limit=5&offset=10")
	got, err := search.ParseQuery(v)
	if err != nil {
		t.Fatal(err)
	}
	zero, max, yes := int64(0), int64(500), true
	want := search.Query{Text: "red lamp", Category: "home", MinPrice: &zero, MaxPrice: &max, InStock: &yes,
		Sort: search.SortPriceDesc, Limit: 5, Offset: 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	padded := " " + strings.Repeat("a", search.MaxText-1)
	if got, err := search.ParseQuery(url.Values{"q": {padded}}); err != nil || got.Text != padded[1:] {
		t.Errorf("q padded to the maximum: %q %v, want it searched trimmed", got.Text, err)
	}
	if got, _ := search.ParseQuery(url.Values{}); got.Sort != search.SortRelevance || got.Limit != search.DefaultLimit {
		t.Errorf("defaults %+v", got)
	}
	for _, raw := range []string{"min_price=abc", "min_price=1.5", "max_price=-1", "min_price=9&max_price=1", "limit=1000",
		"limit=0", "offset=-1", "offset=x", "sort=bogus", "in_stock=maybe", "in_stock=1", "in_stock=TRUE", "category=A%20B",
		// q's maximum counts it as sent, as the contract's maxLength does.
		"q=" + strings.Repeat("a", search.MaxText+1), "q=+" + strings.Repeat("a", search.MaxText)} {
		v, _ := url.ParseQuery(raw)
		if _, err := search.ParseQuery(v); !fault.Is(err, fault.Invalid, "") {
			t.Errorf("%s: %v, want invalid", raw, err)
		}
	}
}

func TestWords(t *testing.T) {
	if diff := cmp.Diff([]string{"usb-c", "cable", "2m"}, search.Words("USB-C  cable, 2m!")); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"café", "speaker", "s", "garden", "-", "5", "日本"}, search.Words("Café — speaker’s garden - 5€ 日本")); diff != "" {
		t.Error("punctuation and symbols separate words:", diff)
	}
}

// TestTermsLeaveOutStopWordsAndSymbols: what a backend must match holds no
// word without a letter or digit, and no English stop word when another word
// remains, each term once; a text of stop words alone keeps them (they are
// what it asks for), and a text of symbols alone has no terms (an empty
// query).
func TestTermsLeaveOutStopWordsAndSymbols(t *testing.T) {
	cases := map[string][]string{
		"Speaker for the Garden":     {"speaker", "garden"},
		"headphones with microphone": {"headphones", "microphone"},
		"speaker — garden € -":       {"speaker", "garden"},
		"-bluetooth- usb-c t-shirt":  {"bluetooth", "usb-c", "t-shirt"},
		"lamp LAMP lamp's":           {"lamp"},
		"the":                        {"the"},
		"The Who":                    {"the", "who"},
		"it — IT it":                 {"it"},
		"of the — € -- ’":            {"of", "the"},
		"the kettle":                 {"kettle"},
		"— € -- ’":                   nil,
		"":                           nil,
	}
	for text, want := range cases {
		if diff := cmp.Diff(want, search.Terms(text)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", text, diff)
		}
	}
}
