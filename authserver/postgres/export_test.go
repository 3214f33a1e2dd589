package postgres

// RecentLen is how many session records the store keeps (tests).
func (s *Store) RecentLen() int { return s.recent.len() }

// BatchedSwaps is how many swaps a statement of many decided (tests).
func (s *Store) BatchedSwaps() int64 {
	if s.batch == nil {
		return 0
	}
	return s.batch.batched.Load()
}
