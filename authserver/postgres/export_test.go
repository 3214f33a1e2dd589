package postgres

// RecentLen is how many session records the store keeps (tests).
func (s *Store) RecentLen() int { return s.recent.len() }
