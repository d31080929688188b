package simulate

type breaker struct {
	open      bool
	half      bool
	trial     bool
	openUntil int64
	consec    int
	win       []bool
	wpos      int
	wn        int
	fails     int
}

func (b *breaker) allow(now int64) bool {
	if !b.open {
		return true
	}
	if now < b.openUntil {
		return false
	}
	if !b.half {
		b.half, b.trial = true, false
	}
	if b.trial {
		return false
	}
	b.trial = true
	return true
}

// record counts an outcome; it reports whether the breaker just opened.
func (b *breaker) record(spec *Breaker, ok bool, now int64) bool {
	if b.open {
		if !b.half || !b.trial {
			return false
		}
		b.trial = false
		if ok {
			*b = breaker{win: b.win}
			for i := range b.win {
				b.win[i] = false
			}
			return false
		}
		b.openUntil = now + int64(spec.Open)
		return false
	}
	if b.win == nil {
		b.win = make([]bool, spec.Window)
	}
	if b.wn == len(b.win) {
		if b.win[b.wpos] {
			b.fails--
		}
	} else {
		b.wn++
	}
	b.win[b.wpos] = !ok
	b.wpos = (b.wpos + 1) % len(b.win)
	if ok {
		b.consec = 0
	} else {
		b.fails++
		b.consec++
	}
	if b.consec >= spec.Consecutive || (b.wn == len(b.win) && float64(b.fails) >= spec.Ratio*float64(b.wn)) {
		b.open, b.half, b.trial = true, false, false
		b.openUntil = now + int64(spec.Open)
		return true
	}
	return false
}
