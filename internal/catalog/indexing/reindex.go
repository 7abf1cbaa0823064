package indexing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
)

// Documents lists the external index's documents (meili.Index).
type Documents interface {
	// CheckListingVersion fails unless the index's server can list as
	// EachDocumentIDs and UnbucketedIDs do, by filter: Meilisearch v1.2 or
	// later (meili.Index.CheckListingVersion); an error wrapping
	// meili.ErrVersionUnchecked says the key may not read the version (but
	// may list), one wrapping meili.ErrKeyRefused that it may do neither.
	CheckListingVersion(ctx context.Context) error
	// CheckListingFilter fails unless the key may list the documents and
	// the listing filters, checked by one listing with a filter nothing
	// matches (before the settings too: a bucket not filterable yet
	// passes); an error wrapping meili.ErrKeyLacksListing says the key
	// may not list this index (but is genuine), one wrapping
	// meili.ErrKeyRefused that it is refused. checked is what
	// CheckListingVersion learnt, so that a key it just accepted is not
	// called wrong nor a server it read as v1.2 or later told to upgrade
	// (meili.Index.CheckListingFilter).
	CheckListingFilter(ctx context.Context, checked meili.Checked) error
	// EachDocumentIDs passes the ids of every document with a bucket to fn,
	// at most batch at a time, so that each document in the index from the
	// start of the walk to its end is passed, whatever others (and fn) add
	// or delete meanwhile (meili.Index.EachDocumentIDs).
	EachDocumentIDs(ctx context.Context, batch int, fn func(ids []uuid.UUID) error) error
	// UnbucketedIDs returns the ids of up to limit documents without a
	// bucket, pushed by a release before buckets, from the first
	// (meili.Index.UnbucketedIDs).
	UnbucketedIDs(ctx context.Context, limit int) ([]uuid.UUID, error)
}

// Reindexed is what a reindex did.
type Reindexed struct {
	// Pushed is how many live products were pushed, in batches.
	Pushed int `json:"pushed"`
	// Repushed is how many of them had changed (or been archived) by the
	// time their batch landed, so were pushed again as a writer pushes
	// (catalogenv.Deps.PushCurrent), and how many listed documents (without
	// a bucket, pushed by a release before buckets, or found stale) were
	// pushed again the same way and left in the index, their product live
	// when that push landed.
	Repushed int `json:"repushed"`
	// Deleted is how many listed documents were removed from the index by
	// such a push: their product was archived or not in the catalog when it
	// landed.
	Deleted int `json:"deleted"`
	// VersionUnchecked, when not nil, is why the server's version was not
	// checked (it wraps meili.ErrVersionUnchecked: the key lacks the
	// "version" action); the run went on without the check.
	VersionUnchecked error `json:"-"`
}

// DefaultBatch is how many products a reindex reads and pushes at a time
// (and how many document ids it lists at a time).
const DefaultBatch = 500

// Reindex rebuilds the external index from the catalog, for an index that
// lost its data or fell behind: it applies the index settings
// (EnsureSettings, the writers' own call), then pushes every live product
// (archived ones are never in the index) batch rows at a time in id order,
// each batch one write whose task it waits for, then lists the index's
// documents, batch ids at a time, and removes each whose product is
// archived or not in the catalog. Memory stays bounded by batch (and the
// listing's stack of spans, and the ids of one bucket too full to split,
// at most meili.MaxBucketIDs: a fuller one fails the run); the catalog is
// only read.
//
// Before anything else it checks the server's version
// (docs.CheckListingVersion): against a Meilisearch older than v1.2, or
// one whose version it cannot parse, it fails before it applies a
// setting, pushes or deletes anything. A key Meilisearch refuses the
// version, the listing and its tasks (meili.ErrKeyRefused: a wrong key),
// or the version and the listing but not its tasks
// (meili.ErrKeyLacksListing: a genuine key without documents.get), stops
// it there too. When the key may list but not read the version
// (meili.ErrVersionUnchecked: a key made before the "version" action was
// asked for), it goes on and says so in VersionUnchecked. Then, whatever
// the version check answered, it checks the listing itself
// (docs.CheckListingFilter, told what the version check learnt) before
// any change, the settings included: a key refused the listing
// (meili.ErrKeyLacksListing, as a key allowed the version but not
// documents.get on this index is, or one whose indexes do not include it;
// a key just accepted is never meili.ErrKeyRefused there), a listing
// that refuses the filter (400, as Meilisearch 1.0 and 1.1 do) or ignores
// it (a document answered to a filter nothing matches) stops it, nothing
// changed. With the version unchecked, on an empty index (or one whose
// bucket is not filterable yet) an ignored filter cannot be seen there, so
// it checks again once its first batch is pushed (a bucketed document is
// then there) and the batch's changed products are pushed again (so a
// failed check leaves no writer's push overwritten), before any listing
// or deletion; a version checked as v1.2 or later filters, so needs no
// second check. Any other failure to read the version stops it.
//
// It is safe while writers push, for a run that returns no error: after a
// batch lands, Reindex reads its products again (one SELECT) and pushes each
// that changed since it was read with the writers' own rule
// (catalogenv.Deps.PushCurrent: push, read again, until what landed is
// current), so a write that committed after the batch was read, and whose
// push landed before the batch did, is not undone. A document found stale is
// removed the same way: PushCurrent reads the product again, so one created
// or brought back meanwhile is pushed, not deleted.
//
// One run converges: the listing never pages with an offset, which a
// document deleted ahead of it (an archive's push) shifts, but lists spans
// of document buckets each in one read (docs.EachDocumentIDs), so every
// document in the index from the listing's start to its end is checked
// against the catalog at least once, whatever writers add or delete
// meanwhile. Documents without a bucket (pushed by a release before
// buckets) are listed first, each pushed again with its bucket or deleted
// (PushCurrent), so each leaves what the next read lists. When the run
// returns no error and no writer's push is still under way, the index
// holds exactly the live products, each as the catalog holds it: a
// product changed, archived or created after the listing checked its span
// is pushed by its writer, as any write is, and a document added after
// its span was checked was added by a writer, which pushes until what
// landed is current.
//
// The first error stops it (a version or the listing's filter refused, a
// key refused or without documents.get, a failed read of the version other
// than a key without the version action, a failed settings update, push,
// task, listing or database read, or ctx done) and is returned with the
// counts so far; d needs Store and External. A batch push that failed may
// still be applied by Meilisearch (it accepted the batch, then the task
// poll failed, timed out or was interrupted), after a writer's newer push:
// Reindex then reads that batch's products again and pushes the changed
// ones, best effort, on a context ctx's cancellation does not reach, for
// at most repairTimeout. Only a run that returns no error guarantees that
// no older row stays in the index; after an error, run it again until one
// does.
func Reindex(ctx context.Context, d *catalogenv.Deps, docs Documents, batch int) (Reindexed, error) {
	var n Reindexed
	if d.External == nil || d.Store == nil {
		return n, errors.New("reindex: no external search index or no catalog store")
	}
	if batch < 1 {
		batch = DefaultBatch
	}
	// Either way on, Meilisearch has just accepted the key: GET /version
	// answered it, or the check listed the documents with it.
	checked := meili.VersionChecked
	if err := docs.CheckListingVersion(ctx); errors.Is(err, meili.ErrVersionUnchecked) {
		n.VersionUnchecked, checked = err, meili.KeyAccepted
	} else if err != nil {
		return n, fmt.Errorf("reindex: %w", err)
	}
	// The listing itself is checked before any change, the settings
	// included, whatever the version check answered: a key allowed GET
	// /version but not documents.get passes that check, and would fail
	// only at the listing, after every push; a key or a server refused
	// here gets no settings update, no push, no deletion. The check
	// passes a bucket not filterable yet, so it need not wait for the
	// settings.
	if err := docs.CheckListingFilter(ctx, checked); err != nil {
		return n, fmt.Errorf("reindex: %w", err)
	}
	if err := d.External.EnsureSettings(ctx); err != nil {
		return n, fmt.Errorf("reindex: apply the index settings: %w", err)
	}
	for after, first := uuid.Nil, true; ; first = false {
		page, err := d.Store.LivePage(ctx, after, batch)
		if err != nil {
			return n, fmt.Errorf("reindex: read the catalog: %w", err)
		}
		if len(page) == 0 {
			break
		}
		out := make([]search.Document, 0, len(page))
		for _, p := range page {
			out = append(out, search.FromProduct(p))
		}
		if err := d.External.Upsert(ctx, out...); err != nil {
			err = fmt.Errorf("reindex: push %d products: %w", len(out), err)
			// Meilisearch may still apply the batch (accepted, then the
			// task poll failed, timed out or was interrupted): push the
			// page's changed products again after it, on a context the
			// interrupt does not cancel, for at most repairTimeout.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repairTimeout)
			k, rerr := repushChanged(rctx, d, page)
			cancel()
			n.Repushed += k
			if rerr != nil {
				err = errors.Join(err, fmt.Errorf("reindex: after the failed push: %w", rerr))
			}
			return n, err
		}
		n.Pushed += len(out)
		k, err := repushChanged(ctx, d, page)
		n.Repushed += k
		if err != nil {
			return n, err
		}
		if first && n.VersionUnchecked != nil {
			// The check above sees no ignored filter on an empty index
			// (or one whose bucket was not filterable yet): checked
			// again now that a bucketed document is there, before any
			// listing or deletion, and after the page's changed products
			// are pushed again, so a writer's newer push the batch
			// overwrote is not left overwritten when the check fails.
			if err := docs.CheckListingFilter(ctx, checked); err != nil {
				return n, fmt.Errorf("reindex: after the first push: %w", err)
			}
		}
		after = page[len(page)-1].ID
		if len(page) < batch {
			break
		}
	}
	if err := removeUnbucketed(ctx, d, docs, batch, &n); err != nil {
		return n, err
	}
	var staleErr error
	err := docs.EachDocumentIDs(ctx, batch, func(ids []uuid.UUID) error {
		staleErr = removeStale(ctx, d, ids, &n)
		return staleErr
	})
	if staleErr != nil {
		return n, staleErr
	}
	if err != nil {
		return n, fmt.Errorf("reindex: list the index: %w", err)
	}
	return n, nil
}

// removeStale removes, as the writers push (catalogenv.Deps.PushCurrent),
// the document of each of ids whose product is archived or not in the
// catalog (one read of them all first; a live one is left alone), counting
// each push in n by what it did (pushAgain).
func removeStale(ctx context.Context, d *catalogenv.Deps, ids []uuid.UUID, n *Reindexed) error {
	now, err := d.Store.CurrentOf(ctx, ids)
	if err != nil {
		return fmt.Errorf("reindex: read the listed products: %w", err)
	}
	var stale []uuid.UUID
	for _, id := range ids {
		if p, found := now[id]; !found || p.Archived {
			stale = append(stale, id)
		}
	}
	return pushAgain(ctx, d, stale, n)
}

// removeUnbucketed pushes again each document without a bucket whose
// product is live (it gets its bucket), and removes the others, as the
// writers push (catalogenv.Deps.PushCurrent), until the index lists none,
// counting each push in n by what it did (pushAgain): each one handled
// leaves what the next read lists, so the listing always reads from the
// first. A page whose ids were all on the page before (pushed, yet still
// without a bucket: a writer of a release before buckets still running) is
// an error rather than a loop.
func removeUnbucketed(ctx context.Context, d *catalogenv.Deps, docs Documents, batch int, n *Reindexed) error {
	var before map[uuid.UUID]bool
	for {
		ids, err := docs.UnbucketedIDs(ctx, batch)
		if err != nil {
			return fmt.Errorf("reindex: list the documents without a bucket: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		again := 0
		for _, id := range ids {
			if before[id] {
				again++
			}
		}
		if again == len(ids) {
			return fmt.Errorf("reindex: %d document(s) still without a bucket after their push (%s first): "+
				"is a writer of an older release still pushing?", len(ids), ids[0])
		}
		before = make(map[uuid.UUID]bool, len(ids))
		for _, id := range ids {
			before[id] = true
		}
		if err := pushAgain(ctx, d, ids, n); err != nil {
			return err
		}
	}
}

// pushAgain pushes each of ids as the writers push
// (catalogenv.Deps.PushCurrent: read, push, read again until current) and
// counts in n what each push did: Repushed when it left the product's
// document in the index (live), Deleted when it removed it. The count is of
// the push itself, so a product archived or created between a caller's
// read and the push is counted as what happened to it.
func pushAgain(ctx context.Context, d *catalogenv.Deps, ids []uuid.UUID, n *Reindexed) error {
	for _, id := range ids {
		upserted, err := d.PushCurrent(ctx, id)
		if err != nil {
			return fmt.Errorf("reindex: push document %s again: %w", id, err)
		}
		if upserted {
			n.Repushed++
		} else {
			n.Deleted++
		}
	}
	return nil
}

// repairTimeout bounds the pushes again after a failed batch push, which run
// on a context that an interrupt does not cancel.
const repairTimeout = 30 * time.Second

// repushChanged reads page's products again and pushes each that
// changed or was archived since page was read, as the writers push
// (catalogenv.Deps.PushCurrent), so a batch of page landing after a writer's
// newer push does not stay. It returns how many it pushed again.
func repushChanged(ctx context.Context, d *catalogenv.Deps, page []catalog.Product) (int, error) {
	ids := make([]uuid.UUID, len(page))
	for i, p := range page {
		ids[i] = p.ID
	}
	now, err := d.Store.CurrentOf(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("reindex: read the pushed products again: %w", err)
	}
	k := 0
	for _, p := range page {
		if q, found := now[p.ID]; found && !q.Archived && q.Version == p.Version {
			continue
		}
		if _, err := d.PushCurrent(ctx, p.ID); err != nil {
			return k, fmt.Errorf("reindex: push product %s again: %w", p.ID, err)
		}
		k++
	}
	return k, nil
}
