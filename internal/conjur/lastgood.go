package conjur

import (
	"container/list"
	"sync"
	"time"
)

// MaxLastGood is how many last-good values a Client holds at most; beyond
// it the least recently used is dropped.
const MaxLastGood = 10000

// lastGoodKey is what a last-good value answers: one variable at one
// version (0 = the latest, as requested).
type lastGoodKey struct {
	identity string // the per-request mode's identity it was fetched as; "" in the single-identity modes
	id       string
	version  int
}

// goodKey is ref's key: its identity's, in the per-request mode.
func goodKey(ref Ref) lastGoodKey {
	k := lastGoodKey{id: ref.ID, version: ref.Version}
	if ref.Workload != nil {
		k.identity = ref.Workload.Subject
	}
	return k
}

type lastGoodEntry struct {
	key  lastGoodKey
	data []byte
	at   time.Time // when Conjur answered it
}

// lastGood holds, in memory only, the last value fetched from Conjur for
// each ref fetched with KeepLastGood, for the stale_if_error rules: a
// bounded LRU, emptied when another identity is handed over. Its lock is a
// leaf.
type lastGood struct {
	max int

	mu    sync.Mutex
	order *list.List // front = most recently used; values are *lastGoodEntry
	items map[lastGoodKey]*list.Element
}

func newLastGood(max int) *lastGood {
	return &lastGood{max: max, order: list.New(), items: map[lastGoodKey]*list.Element{}}
}

// put records data as the last good value of key, fetched at at, unless
// the value held was fetched later.
func (l *lastGood) put(key lastGoodKey, data []byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[key]; ok {
		e := el.Value.(*lastGoodEntry)
		if !at.Before(e.at) {
			e.data, e.at = data, at
		}
		l.order.MoveToFront(el)
		return
	}
	l.items[key] = l.order.PushFront(&lastGoodEntry{key: key, data: data, at: at})
	for l.order.Len() > l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(*lastGoodEntry).key)
	}
}

// get returns the last good value of key if it was fetched within maxAge
// before now, and when it was fetched.
func (l *lastGood) get(key lastGoodKey, maxAge time.Duration, now time.Time) ([]byte, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return nil, time.Time{}, false
	}
	e := el.Value.(*lastGoodEntry)
	if now.Sub(e.at) > maxAge {
		return nil, time.Time{}, false
	}
	l.order.MoveToFront(el)
	return e.data, e.at, true
}

// wipe drops every value.
func (l *lastGood) wipe() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.order.Init()
	clear(l.items)
}

func (l *lastGood) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
