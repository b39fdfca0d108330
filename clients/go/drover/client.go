// Package drover is a small client for drover's ApiService: dial with a bearer token and TLS,
// create a server and watch it to a final state (resuming from the last revision seen after a
// disconnect), and errors decoded with their google.rpc details.
//
// The generated stubs are in github.com/drover/drover/clients/go/gen/drover/v1; Client.API
// exposes every ApiService method, with the same retry policy for the safe ones.
package drover

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	droverv1 "github.com/drover/drover/clients/go/gen/drover/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Client is a connection to one drover API.
type Client struct {
	// API is the generated ApiService client on this connection.
	API  droverv1.ApiServiceClient
	conn *grpc.ClientConn
	opts options
}

type options struct {
	token         string
	tls           *tls.Config
	dialOptions   []grpc.DialOption
	watchResumes  int
	resumeBackoff time.Duration
}

// Option configures Dial.
type Option func(*options)

// WithToken sends `authorization: Bearer <token>` with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS speaks TLS with this configuration (default: plaintext, for loopback).
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithWatchResumes sets how many times in a row WatchServer reconnects after the stream breaks
// (default 5), waiting backoff, then twice as long, before each attempt.
func WithWatchResumes(n int, backoff time.Duration) Option {
	return func(o *options) { o.watchResumes, o.resumeBackoff = n, backoff }
}

// WithDialOptions adds gRPC dial options (interceptors, a custom dialer, …).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// safeMethods are the ApiService calls that read only: retried on UNAVAILABLE. CreateServer,
// DeleteServer and the other writes are never retried (a retry could act twice).
var safeMethods = []string{
	"GetServer", "ListServers", "ListServerActions", "ListFlavors", "GetFlavor", "ListImages",
	"GetImage", "GetServerGroup", "ListServerGroups", "ListNetworks", "ListHosts", "GetConsoleOutput",
}

// retryServiceConfig is gRPC's own retry policy (service config), for the safe methods only.
func retryServiceConfig() string {
	names := ""
	for i, m := range safeMethods {
		if i > 0 {
			names += ","
		}
		names += fmt.Sprintf(`{"service":%q,"method":%q}`, droverv1.ApiService_ServiceDesc.ServiceName, m)
	}
	return `{"methodConfig":[{"name":[` + names + `],"retryPolicy":{"maxAttempts":4,` +
		`"initialBackoff":"0.1s","maxBackoff":"2s","backoffMultiplier":2,` +
		`"retryableStatusCodes":["UNAVAILABLE"]}}]}`
}

// Dial connects to the API at addr ("host:port"). The connection is made lazily, on first use.
func Dial(addr string, opts ...Option) (*Client, error) {
	o := options{watchResumes: 5, resumeBackoff: 200 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(retryServiceConfig()),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.tls != nil}))
	}
	conn, err := grpc.NewClient(addr, append(dial, o.dialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("drover: dial %s: %w", addr, err)
	}
	return &Client{API: droverv1.NewApiServiceClient(conn), conn: conn, opts: o}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer attaches the token to every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false so a token also works on plaintext loopback (tests, `drover up`).
func (b bearer) RequireTransportSecurity() bool { return false }

// CreateServer creates servers; it is not retried. Errors are *Error.
func (c *Client) CreateServer(ctx context.Context, req *droverv1.CreateServerRequest) (*droverv1.CreateServerResponse, error) {
	resp, err := c.API.CreateServer(ctx, req)
	return resp, decode(err)
}

// GetServer reads one server (retried on UNAVAILABLE). Errors are *Error.
func (c *Client) GetServer(ctx context.Context, id string) (*droverv1.Server, error) {
	resp, err := c.API.GetServer(ctx, &droverv1.GetServerRequest{Id: id})
	if err != nil {
		return nil, decode(err)
	}
	return resp.GetServer(), nil
}

// DeleteServer deletes a server (not retried: a second delete would report NOT_FOUND).
func (c *Client) DeleteServer(ctx context.Context, id string) (*droverv1.Server, error) {
	resp, err := c.API.DeleteServer(ctx, &droverv1.DeleteServerRequest{Id: id})
	if err != nil {
		return nil, decode(err)
	}
	return resp.GetServer(), nil
}
