//! Client libraries against a real `tidelake serve` child: SQLAlchemy 2 and
//! pandas through psycopg, and a replay of pgjdbc's and DBeaver's startup
//! statements (tests/server/clients.py, tests/server/fixtures/jdbc_startup.sql).

use std::process::Command;
use std::time::Duration;

use tidelake_testkit::process::run;
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::serve::serve;

#[test]
fn sqlalchemy_pandas_and_a_jdbc_startup_replay() {
    let python = python::find().expect("the test venv's python (scripts/test builds it)");
    let dir = KeptOnFailure::new("serve-clients");
    let mut server = serve(dir.path(), &[]);
    let script = python::workspace_root().join("tests/server/clients.py");
    let mut command = Command::new(python);
    command.arg(script).arg(server.pg.to_string());
    let done = run(&mut command, "", Duration::from_secs(240));
    assert!(
        done.status.success(),
        "clients.py failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    for check in ["sqlalchemy_inspection", "pandas_round_trip", "jdbc_replay"] {
        assert!(
            done.stdout.contains(&format!("ok {check}\n")),
            "{}",
            done.stdout
        );
    }
    server.child.kill();
}
