package rabbitmqtest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStartRestartStop(t *testing.T) {
	t0 := time.Now()
	b := Start(t)
	t.Logf("started in %s on port %d", time.Since(t0), b.Port)
	if _, err := b.Ctl("-q", "add_vhost", "probe"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	b.Restart(t)
	t.Logf("restarted in %s", time.Since(t0))
	out, err := b.Ctl("-q", "list_vhosts")
	if err != nil {
		t.Fatal(err)
	}
	if want := "probe"; !strings.Contains(out, want) {
		t.Fatalf("list_vhosts after a restart: %q, want %q", out, want)
	}
	if _, err := b.Queues(); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), time.Second); err == nil {
		c.Close()
		t.Fatal("the AMQP port still accepts connections after Stop")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.EPMDPort), time.Second); err == nil {
		c.Close()
		t.Fatal("epmd still runs after Stop")
	}
}
