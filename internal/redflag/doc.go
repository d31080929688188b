// Package redflag is the red-flag contract that several of Vigil's
// components share, so that none of them imports another: how a client span
// names the dependency it calls and how that name resolves to a service
// (edge identity, used by the redflag connector and the tail sampler's
// red_flag policy alike), the flagged set the sampler keeps traces for, and
// the live snapshot the connector publishes to the status extension, with the
// interfaces between them.
package redflag
