package freeze_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/netdelay"
)

// rawLayout is the floor under the bare wire clients: nothing of
// lockstep's on either side. n TLS connections over loopback; a storage
// side that reads a message the size of a freeze request, notes the
// instant, and writes back in one write as many bytes as a freeze's
// answer and its 16 events take on the wire; a manager side with a
// reading goroutine per connection and a goroutine per system that
// writes its request and waits for the answer. Messages are a 4-byte
// length and a type byte: 'T' the trigger (from the first system's side
// unasked), 'Q' a request, 'R' an answer. The same one-way latency as the
// other layouts when asked (netdelay on the storage side's writes, a
// sleep before a request is taken up). What it costs is what this
// machine charges for the traffic of a freeze of n systems: TLS records,
// system calls, wake-ups, on the 2 cores both sides share.
type rawLayout struct {
	instants []*leanStorage // only their freeze instants (frozeAt)
	clients  []*rawClient
	first    net.Conn    // the first system's storage side, which raises the trigger
	firstMu  *sync.Mutex // its writes: the trigger and its answers
	trigger  chan struct{}
}

// rawSizes are the byte counts of a freeze of 16 LSS pairs on the wire
// (frames included): its request, and its answer with the 16 events.
func rawSizes(b *testing.B, pairs []hal.LSSPair) (request, reply int) {
	args, err := wire.EncodeArgs(wire.OpFreeze, wire.Args{LSSPairs: pairs})
	if err != nil {
		b.Fatal(err)
	}
	req, err := wire.EncodeRequest(wire.Request{ID: 1, Epoch: 1, Timeout: time.Second, Op: wire.OpFreeze, Args: args})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := wire.EncodeResponse(wire.Response{ID: 1})
	if err != nil {
		b.Fatal(err)
	}
	reply = 5 + len(resp)
	var vols hal.VolumeSet
	vols.Add(0)
	for _, lp := range pairs {
		ev, err := wire.EncodeEvent(hal.Event{Kind: hal.EventSuspend, Serial: lp.Source.Serial, Seq: 1,
			At: time.Now(), LSSPair: lp, Reason: hal.ReasonFreeze, Volumes: vols})
		if err != nil {
			b.Fatal(err)
		}
		reply += 5 + len(ev)
	}
	return 5 + len(req), reply
}

// rawMessage is one message of the raw layout: length, type, payload.
func rawMessage(typ byte, size int) []byte {
	m := make([]byte, max(size, 5))
	binary.BigEndian.PutUint32(m, uint32(len(m)-4))
	m[4] = typ
	return m
}

// readRaw reads one message and returns its type.
func readRaw(br *bufio.Reader, buf []byte) (byte, []byte, error) {
	if _, err := io.ReadFull(br, buf[:4]); err != nil {
		return 0, buf, err
	}
	n := int(binary.BigEndian.Uint32(buf))
	if n > cap(buf) {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		return 0, buf, err
	}
	return buf[0], buf, nil
}

// rawClient is the manager's end of one raw connection.
type rawClient struct {
	mu      sync.Mutex // one writer at a time
	conn    net.Conn
	request []byte
	replies chan struct{}
}

func setupRaw(b *testing.B, ca *wire.SelfSigned, prefix string, n int, oneWay time.Duration) *rawLayout {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	l := &rawLayout{trigger: make(chan struct{}, 1)}
	for i := range n {
		serial := hal.Serial(fmt.Sprintf("RAW.2107-%sP%04d", prefix, i))
		reqSize, replySize := rawSizes(b, leanPairs(serial, hal.Serial(fmt.Sprintf("RAW.2107-%sS%04d", prefix, i))))
		instant := &leanStorage{serial: serial}
		l.instants = append(l.instants, instant)
		ln, cfg := listenTLS(b, ca, serial)
		accepted := make(chan net.Conn, 1)
		wmu := &sync.Mutex{}
		if i == 0 {
			l.firstMu = wmu
		}
		storage := pprof.WithLabels(ctx, pprof.Labels("side", "storage"))
		go func() {
			pprof.SetGoroutineLabels(storage)
			raw, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			conn := netdelay.NewConn(tls.Server(raw, cfg), clock.Real(),
				func() time.Duration { return oneWay })
			context.AfterFunc(ctx, func() { conn.Close() })
			accepted <- conn
			reply := rawMessage('R', replySize)
			br := bufio.NewReader(conn)
			buf := make([]byte, 0, 4096)
			for {
				var err error
				if _, buf, err = readRaw(br, buf[:cap(buf)]); err != nil {
					return
				}
				if clock.Sleep(ctx, clock.Real(), oneWay) != nil {
					return
				}
				instant.frozeAt.Store(time.Now().UnixNano())
				wmu.Lock() // the first system's trigger shares the connection
				_, err = conn.Write(reply)
				wmu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		tc := tls.Client(raw, wire.ClientTLSConfig(ca.Pool, "127.0.0.1"))
		if err := tc.HandshakeContext(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tc.Close() })
		c := &rawClient{conn: tc, request: rawMessage('Q', reqSize), replies: make(chan struct{}, 1)}
		mgr := pprof.WithLabels(ctx, pprof.Labels("side", "manager"))
		go func() {
			pprof.SetGoroutineLabels(mgr)
			br := bufio.NewReader(tc)
			buf := make([]byte, 0, 4096)
			for {
				var typ byte
				var err error
				if typ, buf, err = readRaw(br, buf[:cap(buf)]); err != nil {
					return
				}
				if typ == 'T' {
					select {
					case l.trigger <- struct{}{}:
					default:
					}
					continue
				}
				c.replies <- struct{}{}
			}
		}()
		l.clients = append(l.clients, c)
		server, ok := <-accepted
		if !ok {
			b.Fatal("accept failed")
		}
		if i == 0 {
			l.first = server
		}
	}
	return l
}

// once raises the trigger on the first system's side and, when it
// reaches the manager's side, sends every system its request at once:
// the sample is from the trigger's stamp to the last answer.
func (l *rawLayout) once(b *testing.B) (sample, bool) {
	for _, c := range l.clients { // an answer that came after its sample was lost
		select {
		case <-c.replies:
		default:
		}
	}
	at := time.Now()
	cpu0, gc0 := cpuTime(b), gcCycles()
	l.firstMu.Lock()
	_, err := l.first.Write(rawMessage('T', 100)) // about an event's size
	l.firstMu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-l.trigger:
	case <-ctx.Done():
		b.Logf("sample lost: trigger not seen")
		return sample{}, false
	}
	firstSent, lastSent, last, err := sendAll(len(l.clients), func(i int) error {
		c := l.clients[i]
		c.mu.Lock()
		_, err := c.conn.Write(c.request)
		c.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-c.replies:
			return nil
		case <-ctx.Done():
			return errors.New("no answer")
		}
	})
	cpu, gc := cpuTime(b)-cpu0, gcCycles() != gc0
	if err != nil {
		b.Logf("sample lost: %v", err)
		return sample{}, false
	}
	firstFrozen, lastFrozen, ok := frozenSpan(l.instants, at)
	if !ok {
		b.Fatal("an answer came for a request not taken up")
	}
	return sample{latency: last.Sub(at), skew: lastFrozen.Sub(firstFrozen), cpu: cpu, gc: gc,
		detect: firstSent.Sub(at), dispatch: lastSent.Sub(firstSent), ret: last.Sub(lastFrozen)}, true
}
