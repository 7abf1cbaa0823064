package indexing

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/search"
)

// Documents lists the external index's documents (meili.Index.DocumentIDs):
// up to limit ids from offset, and how many documents the index holds.
type Documents interface {
	DocumentIDs(ctx context.Context, offset, limit int) ([]uuid.UUID, int, error)
}

// Reindexed is what a reindex did.
type Reindexed struct {
	// Pushed is how many live products were pushed, in batches.
	Pushed int `json:"pushed"`
	// Repushed is how many of them had changed (or been archived) by the
	// time their batch landed, so were pushed again as a writer pushes
	// (catalogenv.Deps.PushCurrent).
	Repushed int `json:"repushed"`
	// Deleted is how many documents were removed from the index: their
	// product was archived or is not in the catalog.
	Deleted int `json:"deleted"`
}

// DefaultBatch is how many products a reindex reads and pushes at a time
// (and how many document ids it lists at a time).
const DefaultBatch = 500

// Reindex rebuilds the external index from the catalog, for an index that
// lost its data or fell behind: it applies the index settings
// (EnsureSettings, the writers' own call), then pushes every live product
// (archived ones are never in the index) batch rows at a time in id order,
// each batch one write whose task it waits for, then lists the index's
// documents batch ids at a time and removes each whose product is archived
// or not in the catalog. Memory stays bounded by batch; the catalog is only
// read.
//
// It is safe while writers push: after a batch lands, Reindex reads its
// products again (one SELECT) and pushes each that changed since it was read
// with the writers' own rule (catalogenv.Deps.PushCurrent: push, read again,
// until what landed is current), so a write that committed after the batch
// was read, and whose push landed before the batch did, is not undone. A
// document found stale is removed the same way: PushCurrent reads the
// product again, so one created or brought back meanwhile is pushed, not
// deleted. A document removed by a writer while the index is listed shifts
// the ones after it, so one stale document may be missed: the counts of a
// second run show it.
//
// The first error stops it (a failed settings update, push, task, listing
// or database read) and is returned with the counts so far; d needs Store
// and External.
func Reindex(ctx context.Context, d *catalogenv.Deps, docs Documents, batch int) (Reindexed, error) {
	var n Reindexed
	if d.External == nil || d.Store == nil {
		return n, errors.New("reindex: no external search index or no catalog store")
	}
	if batch < 1 {
		batch = DefaultBatch
	}
	if err := d.External.EnsureSettings(ctx); err != nil {
		return n, fmt.Errorf("reindex: apply the index settings: %w", err)
	}
	for after := uuid.Nil; ; {
		page, err := d.Store.LivePage(ctx, after, batch)
		if err != nil {
			return n, fmt.Errorf("reindex: read the catalog: %w", err)
		}
		if len(page) == 0 {
			break
		}
		out := make([]search.Document, 0, len(page))
		ids := make([]uuid.UUID, 0, len(page))
		for _, p := range page {
			out = append(out, search.FromProduct(p))
			ids = append(ids, p.ID)
		}
		if err := d.External.Upsert(ctx, out...); err != nil {
			return n, fmt.Errorf("reindex: push %d products: %w", len(out), err)
		}
		n.Pushed += len(out)
		now, err := d.Store.CurrentOf(ctx, ids)
		if err != nil {
			return n, fmt.Errorf("reindex: read the pushed products again: %w", err)
		}
		for _, p := range page {
			if q, found := now[p.ID]; found && !q.Archived && q.Version == p.Version {
				continue
			}
			if err := d.PushCurrent(ctx, p.ID); err != nil {
				return n, fmt.Errorf("reindex: push product %s again: %w", p.ID, err)
			}
			n.Repushed++
		}
		after = page[len(page)-1].ID
		if len(page) < batch {
			break
		}
	}
	// Documents kept stay where they are; a removed one shifts the rest
	// back, so the next page starts after the kept ones only.
	for offset := 0; ; {
		ids, _, err := docs.DocumentIDs(ctx, offset, batch)
		if err != nil {
			return n, fmt.Errorf("reindex: list the index: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		now, err := d.Store.CurrentOf(ctx, ids)
		if err != nil {
			return n, fmt.Errorf("reindex: read the listed products: %w", err)
		}
		for _, id := range ids {
			if p, found := now[id]; found && !p.Archived {
				offset++
				continue
			}
			if err := d.PushCurrent(ctx, id); err != nil {
				return n, fmt.Errorf("reindex: remove document %s: %w", id, err)
			}
			n.Deleted++
		}
		if len(ids) < batch {
			break
		}
	}
	return n, nil
}
