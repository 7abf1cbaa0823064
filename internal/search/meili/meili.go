// Package meili is the Meilisearch search backend, used instead of the
// embedded PostgreSQL one when MEILI_URL is configured. Writes wait for their
// Meilisearch task to succeed, so a search right after Upsert or Delete sees
// it, as with the embedded backend.
package meili

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/meilisearch/meilisearch-go"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/search"
)

// Config configures the adapter.
type Config struct {
	// URL of the Meilisearch server, e.g. http://meilisearch:7700. Required.
	URL string
	// APIKey is the master or an admin key (secret meili-key); empty when the
	// server runs without one.
	APIKey string
	// IndexUID is the index holding products. Default "products".
	IndexUID string
	// HTTPClient is the client used; default one with a 5 s timeout.
	HTTPClient *http.Client
	// PollInterval is how often a write polls its task. Default 20 ms.
	PollInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.IndexUID == "" {
		c.IndexUID = "products"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 20 * time.Millisecond
	}
}

// IndexSettings are what EnsureSettings applies. "sort" is the first ranking rule, so
// an explicit sort (price, popularity) is exact and relevance only breaks its
// ties; without a sort parameter the rule is inactive and relevance decides.
// id is sortable only to break ties deterministically.
func IndexSettings() *meilisearch.Settings {
	return &meilisearch.Settings{
		RankingRules:         []string{"sort", "words", "typo", "proximity", "attribute", "exactness"},
		SearchableAttributes: []string{"name", "description", "category", "sku"},
		FilterableAttributes: []string{"category", "price", "in_stock", "archived"},
		SortableAttributes:   []string{"price", "sold_count", "id"},
	}
}

// Index is a Meilisearch index of products.
type Index struct {
	cfg    Config
	client meilisearch.ServiceManager
	index  meilisearch.IndexManager
}

var _ search.Index = (*Index)(nil)

// New returns the adapter; it does not contact the server.
func New(cfg Config) (*Index, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("meili: URL is required")
	}
	cfg.setDefaults()
	opts := []meilisearch.Option{meilisearch.WithCustomClient(cfg.HTTPClient)}
	if cfg.APIKey != "" {
		opts = append(opts, meilisearch.WithAPIKey(cfg.APIKey))
	}
	client := meilisearch.New(cfg.URL, opts...)
	return &Index{cfg: cfg, client: client, index: client.Index(cfg.IndexUID)}, nil
}

// document is the shape stored in Meilisearch: flat, so price is filterable
// and sortable as a number.
type document struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	Price       int64  `json:"price"`
	Currency    string `json:"currency"`
	SoldCount   int64  `json:"sold_count"`
	InStock     bool   `json:"in_stock"`
	Archived    bool   `json:"archived"`
}

func toDocument(d search.Document) document {
	return document{ID: d.ID.String(), SKU: d.SKU, Name: d.Name, Description: d.Description, Category: d.Category,
		Price: d.Price.Amount, Currency: d.Price.Currency, SoldCount: d.SoldCount, InStock: d.InStock}
}

func (d document) search() (search.Document, error) {
	id, err := uuid.Parse(d.ID)
	return search.Document{ID: id, SKU: d.SKU, Name: d.Name, Description: d.Description, Category: d.Category,
		Price: catalog.Money{Amount: d.Price, Currency: d.Currency}, SoldCount: d.SoldCount, InStock: d.InStock}, err
}

// wait blocks until the task is done and reports a failed task as an error.
func (ix *Index) wait(ctx context.Context, what string, info *meilisearch.TaskInfo, err error) error {
	if err != nil {
		return fmt.Errorf("meili: %s: %w", what, err)
	}
	task, err := ix.client.WaitForTaskWithContext(ctx, info.TaskUID, ix.cfg.PollInterval)
	if err != nil {
		return fmt.Errorf("meili: %s: task %d: %w", what, info.TaskUID, err)
	}
	if task.Status != meilisearch.TaskStatusSucceeded {
		return fmt.Errorf("meili: %s: task %d %s: %s", what, info.TaskUID, task.Status, task.Error.Message)
	}
	return nil
}

// EnsureSettings creates the index if needed and applies Settings; applying
// the same settings again changes nothing.
func (ix *Index) EnsureSettings(ctx context.Context) error {
	info, err := ix.index.UpdateSettingsWithContext(ctx, IndexSettings())
	return ix.wait(ctx, "update settings", info, err)
}

// Upsert adds or replaces whole documents by id.
func (ix *Index) Upsert(ctx context.Context, docs ...search.Document) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]document, 0, len(docs))
	for _, d := range docs {
		out = append(out, toDocument(d))
	}
	pk := "id"
	info, err := ix.index.AddDocumentsWithContext(ctx, out, &meilisearch.DocumentOptions{PrimaryKey: &pk})
	return ix.wait(ctx, "add documents", info, err)
}

// Delete removes a document; a missing one is not an error.
func (ix *Index) Delete(ctx context.Context, id uuid.UUID) error {
	info, err := ix.index.DeleteDocumentWithContext(ctx, id.String(), nil)
	return ix.wait(ctx, "delete document", info, err)
}

// Filter is the Meilisearch filter expression for q's filters; archived
// documents are never found.
func Filter(q search.Query) string {
	parts := []string{"archived = false"}
	if q.Category != "" {
		parts = append(parts, "category = "+strconv.Quote(q.Category))
	}
	if q.MinPrice != nil {
		parts = append(parts, "price >= "+strconv.FormatInt(*q.MinPrice, 10))
	}
	if q.MaxPrice != nil {
		parts = append(parts, "price <= "+strconv.FormatInt(*q.MaxPrice, 10))
	}
	if q.InStock != nil {
		parts = append(parts, "in_stock = "+strconv.FormatBool(*q.InStock))
	}
	return strings.Join(parts, " AND ")
}

// Search answers q. Every query word must match (matchingStrategy "all"),
// like the embedded backend.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	req := &meilisearch.SearchRequest{
		Query: q.Text, Limit: int64(q.Limit), Offset: int64(q.Offset), Filter: Filter(q),
		Facets: []string{"category"}, MatchingStrategy: meilisearch.All,
	}
	switch q.Sort {
	case search.SortPriceAsc:
		req.Sort = []string{"price:asc", "id:desc"}
	case search.SortPriceDesc:
		req.Sort = []string{"price:desc", "id:desc"}
	case search.SortPopularity:
		req.Sort = []string{"sold_count:desc", "id:desc"}
	}
	res := search.Result{Hits: []search.Document{}, Facets: map[string]map[string]int{"category": {}}}
	resp, err := ix.index.SearchWithContext(ctx, q.Text, req)
	if err != nil {
		return res, fmt.Errorf("meili: search: %w", err)
	}
	var docs []document
	if err := resp.Hits.DecodeInto(&docs); err != nil {
		return res, fmt.Errorf("meili: decode hits: %w", err)
	}
	for _, d := range docs {
		sd, err := d.search()
		if err != nil {
			return res, fmt.Errorf("meili: hit id %q: %w", d.ID, err)
		}
		res.Hits = append(res.Hits, sd)
	}
	res.Total = int(resp.EstimatedTotalHits)
	if len(resp.FacetDistribution) > 0 {
		var dist map[string]map[string]int
		if err := json.Unmarshal(resp.FacetDistribution, &dist); err != nil {
			return res, fmt.Errorf("meili: decode facets: %w", err)
		}
		for k, v := range dist["category"] {
			res.Facets["category"][k] = v
		}
	}
	return res, nil
}
