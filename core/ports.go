package core

import "context"

// Transactor runs fn in one database transaction carried by the context it
// hands to fn; repositories called with that context join the transaction,
// and so does EventSink.AddEvents. fn's error rolls everything back.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Pinger reports whether a dependency answers (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}
