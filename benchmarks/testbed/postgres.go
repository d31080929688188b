package testbed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	// Registers the "pgx" database/sql driver (the orchestrator's own,
	// uninstrumented connections).
	_ "github.com/jackc/pgx/v5/stdlib"
)

// pgIP is where the run's PostgreSQL server listens (behind its proxy).
const pgIP = "127.0.0.200"

// postgres is the run's PostgreSQL server: initdb into the work directory,
// run as the postgres OS user when the orchestrator is root.
type postgres struct {
	dir  string
	addr string
	proc *proc
	db   *sql.DB // to the postgres database, for admin statements
}

// pgCommand runs a PostgreSQL binary, as the postgres user when root.
func pgCommand(pgBin, name string, args ...string) (string, []string) {
	bin := filepath.Join(pgBin, name)
	if os.Geteuid() == 0 {
		return "runuser", append([]string{"-u", "postgres", "--", bin}, args...)
	}
	return bin, args
}

// checkPG reports a missing PostgreSQL installation with the package to
// install.
func checkPG(pgBin string) error {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(pgBin, b)); err != nil {
			return fmt.Errorf("cannot find PostgreSQL's %s in %s: install Debian's postgresql package (apt-get install postgresql), or set PGBin: %w", b, pgBin, err)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return fmt.Errorf("cannot find the postgres OS user to run PostgreSQL as (install Debian's postgresql package): %w", err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return fmt.Errorf("cannot find runuser to run PostgreSQL as the postgres user: %w", err)
		}
	}
	return nil
}

// startPostgres initialises a cluster in workDir/postgres and starts it on
// pgIP at a free port, with fsync off and unix sockets in the work
// directory.
func startPostgres(ctx context.Context, pgBin, workDir, run string) (*postgres, error) {
	if err := checkPG(pgBin); err != nil {
		return nil, err
	}
	dir := filepath.Join(workDir, "postgres")
	sock := filepath.Join(workDir, "pgsock")
	for _, d := range []string{dir, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", d, err)
		}
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("cannot find the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{dir, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("cannot give %s to the postgres user: %w", d, err)
			}
		}
	}
	name, args := pgCommand(pgBin, "initdb", "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot initdb %s (the postgres user must be able to reach it): %w: %s", dir, err, tail(out))
	}
	// Clients come through toxiproxy, whose upstream connections may come
	// from any 127/8 address.
	hba, err := os.OpenFile(filepath.Join(dir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open pg_hba.conf: %w", err)
	}
	_, err = hba.WriteString("host all all 127.0.0.0/8 trust\n")
	if err := errors.Join(err, hba.Close()); err != nil {
		return nil, fmt.Errorf("cannot write pg_hba.conf: %w", err)
	}
	port, err := freePort(pgIP)
	if err != nil {
		return nil, err
	}
	sockets := sock
	if len(sock) > 90 { // sun_path is 108 bytes, with the socket's own name
		sockets = ""
	}
	name, args = pgCommand(pgBin, "postgres", "-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses="+pgIP, "-c", "unix_socket_directories="+sockets, "-c", "fsync=off",
		"-c", "max_connections=200")
	p, err := startProc("postgres", filepath.Join(workDir, "logs", "postgres.log"), name, args, []string{runEnvVar + "=" + run})
	if err != nil {
		return nil, err
	}
	pg := &postgres{dir: dir, addr: net.JoinHostPort(pgIP, strconv.Itoa(port)), proc: p}
	pg.db, err = sql.Open("pgx", pg.dsn("postgres"))
	if err != nil {
		_ = pg.stop()
		return nil, fmt.Errorf("cannot open the postgres database: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = pg.db.PingContext(pctx)
		cancel()
		if err == nil {
			return pg, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			_ = pg.stop()
			return nil, fmt.Errorf("cannot start PostgreSQL on %s (log in %s): %w", pg.addr, filepath.Join(workDir, "logs", "postgres.log"), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (pg *postgres) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&connect_timeout=5", pg.addr, database)
}

// createDatabase creates a database and runs schema in it.
func (pg *postgres) createDatabase(ctx context.Context, name, schema string) error {
	if _, err := pg.db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		return fmt.Errorf("cannot create database %s: %w", name, err)
	}
	if schema == "" {
		return nil
	}
	db, err := sql.Open("pgx", pg.dsn(name))
	if err != nil {
		return fmt.Errorf("cannot open database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("cannot create the schema of %s: %w", name, err)
	}
	return nil
}

// setSlow sets the slow_ms knob the SQL functions of database name sleep.
func (pg *postgres) setSlow(ctx context.Context, name string, ms float64) error {
	db, err := sql.Open("pgx", pg.dsn(name))
	if err != nil {
		return fmt.Errorf("cannot open database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "UPDATE knobs SET value = $1 WHERE name = 'slow_ms'", ms); err != nil {
		return fmt.Errorf("cannot set slow_ms in %s: %w", name, err)
	}
	return nil
}

// stop shuts the server down fast (SIGINT to the postmaster: abort
// transactions, disconnect clients) and waits for it.
func (pg *postgres) stop() error {
	if pg.db != nil {
		_ = pg.db.Close()
	}
	var errs []error
	if b, err := os.ReadFile(filepath.Join(pg.dir, "postmaster.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGINT)
		}
	}
	// runuser exits when postgres does; SIGINT reaches postgres directly when
	// there is no runuser.
	if err := pg.proc.stop(syscall.SIGINT, 20*time.Second); err != nil {
		errs = append(errs, err)
	}
	pg.proc.killGroup()
	return errors.Join(errs...)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// tail returns the last lines of a command's output, for an error.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}
