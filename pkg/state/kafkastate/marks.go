package kafkastate

// mark is when an id was recorded, for forgetting the oldest first.
type mark struct {
	id hashKey
	at int64 // UnixNano
}

// marks is a min-heap of marks by time: marks[0] is the oldest.
type marks []mark

func (h *marks) push(m mark) {
	*h = append(*h, m)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if s[parent].at <= s[i].at {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

// pop removes the oldest mark.
func (h *marks) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	*h = s
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && s[l].at < s[least].at {
			least = l
		}
		if r < n && s[r].at < s[least].at {
			least = r
		}
		if least == i {
			return
		}
		s[i], s[least] = s[least], s[i]
		i = least
	}
}
