package simulate

// ring is a FIFO on a growable circular buffer.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (q *ring[T]) len() int { return q.n }

func (q *ring[T]) push(v T) {
	if q.n == len(q.buf) {
		nb := make([]T, max(8, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

func (q *ring[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return v
}

type service struct {
	spec      *Service
	ops       []*operation
	all       []*instance // live instances (ready, starting or draining)
	ready     []*instance // receiving new requests
	targets   []*instance // what callers route to: ready plus recently removed
	short     string      // "payments"
	fqdn      string      // "payments.shop.svc.cluster.local"
	rpcSvc    string      // "shop.PaymentsService"
	scope     string
	isEntry   bool
	failShare float64
	failKind  rkind
	slow      float64
	leak      float64 // leak effect: seconds until the pool is exhausted (0 = off)
	leakPool  string
	breakers  int // breaker-guarded call sites
	pools     []*external
	// starve is the median delay (ns) before a starved instance's
	// goroutines handle a response (CPU starvation; 0 = off).
	starve float64
	// linkDelay is added to every hop into and out of the service (its
	// network got slow; 0 = off).
	linkDelay int64
}

type operation struct {
	svc      *service
	spec     *Operation
	steps    [][]*site
	method   string // HTTP method
	route    string // HTTP route, "/products/{id}"
	spanName string
	rpcName  string
	cpu      float64 // median ns
	weight   float64
	idInPath bool
	metricIx int
}

type site struct {
	spec    Call
	caller  *service
	svc     *service
	op      *operation
	ext     *external
	bidx    int
	pidx    int
	addr    string
	port    int64
	url     string // url.full without the id
	dbOp    string
	dbTable string
	dbQuery string
	method  string
}

type external struct {
	spec  External
	busy  int
	queue ring[ref]
	slow  float64
	scope string
}

type instance struct {
	svc          *service
	slot         int
	id, pod      string
	node         string
	version      string
	ready        bool
	refusing     bool // removed by a rolling restart: callers that still route here are refused
	gone         bool
	started      int64
	warmUntil    int64
	busy         int
	queue        ring[*request]
	cpuSlots     int
	cpuSpeed     float64
	cpuBusy      int
	cpuQ         ring[*request]
	cpuNs        float64 // cumulative CPU consumed
	lastCPU      float64
	failShare    float64
	pools        []*pool
	breakers     []breaker
	series       []*series
	memNoise     float64
	resourceAttr [][2]string
	ip           string // the pod IP
}

type pool struct {
	ext      *external
	max      int
	used     int // checked out, leaked included
	leaked   int
	pending  int
	waiters  ring[ref]
	timeouts int64
	acquired int64
}

type request struct {
	trace  [16]byte
	span   [8]byte
	parent [8]byte
	inst   *instance
	op     *operation
	from   ref
	arrive int64
	start  int64
	phase  uint8
	step   int
	out    int
	res    result
	bad    int16
	cpu    float64 // compute needed (ns) for the queued segment
	id     int64
	calls  []*call // the current step's calls in flight
	next   *request
}

const (
	phasePre uint8 = iota
	phaseSteps
	phasePost
)

type call struct {
	gen       uint32
	attempt   int32
	r         *request
	site      *site
	span      [8]byte
	start     int64
	inst      *instance
	spanned   bool
	waiting   bool
	holdsConn bool
	done      bool
	next      *call
}
