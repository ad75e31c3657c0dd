//! Prepared-statement handles and tickets, self-contained so that any
//! server process can act on them: a handle carries its SQL, database and
//! bound parameters; a ticket carries the SQL with its parameters in place,
//! the database and the result schema that GetFlightInfo announced (or, for
//! a statement that already ran, its rows). A DoGet may therefore reach a
//! different process than the GetFlightInfo.
//!
//! They are JSON, **not signed**: a DoGet runs a ticket's SQL as the DoGet
//! caller (with that caller's rights), and only statements that change
//! nothing, so a forged ticket can do nothing its bearer could not do with
//! a plain statement.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// The largest result a ticket carries (statements that ran at GetFlightInfo).
pub const MAX_CARRIED_RESULT: usize = 16 << 20;

const VERSION: u8 = 1;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, Status> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Status::invalid_argument("malformed handle or ticket"))
}

/// A prepared statement.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Prepared {
    v: u8,
    /// Names this statement's parameters in this process (for clients that
    /// do not adopt the handle DoPut returns).
    pub id: String,
    pub sql: String,
    pub database: Option<String>,
    /// Rows of bound parameters as SQL literals (`None`: none bound here).
    pub params: Option<Vec<Vec<String>>>,
}

impl Prepared {
    pub fn new(sql: String, database: Option<String>) -> Prepared {
        Prepared {
            v: VERSION,
            id: uuid::Uuid::new_v4().simple().to_string(),
            sql,
            database,
            params: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Prepared, Status> {
        let p: Prepared = serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("malformed prepared statement handle"))?;
        if p.v != VERSION {
            return Err(Status::invalid_argument(
                "a prepared statement handle of another server version",
            ));
        }
        Ok(p)
    }
}

/// What a DoGet reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ticket {
    v: u8,
    /// Names the query in the process that planned it (to reuse its plan
    /// and to cancel it).
    pub id: String,
    pub database: Option<String>,
    /// The statement, parameters in place (empty when `result` is given).
    pub sql: String,
    /// The schema GetFlightInfo announced, as an Arrow IPC stream.
    schema: String,
    /// The rows of a statement that already ran, as an Arrow IPC stream.
    result: Option<String>,
}

impl Ticket {
    /// A query a DoGet runs.
    pub fn query(sql: String, database: Option<String>, schema: &Schema) -> Result<Ticket, Status> {
        Ok(Ticket {
            v: VERSION,
            id: uuid::Uuid::new_v4().simple().to_string(),
            database,
            sql,
            schema: b64(&ipc(&Arc::new(schema.clone()), &[])?),
            result: None,
        })
    }

    /// Rows of a statement that ran already, carried in the ticket.
    pub fn carrying(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Ticket, Status> {
        let bytes = ipc(schema, batches)?;
        if bytes.len() > MAX_CARRIED_RESULT {
            return Err(Status::resource_exhausted(format!(
                "the statement's result is {} bytes, more than a ticket carries ({MAX_CARRIED_RESULT}); \
                 write it to a table and query that",
                bytes.len()
            )));
        }
        Ok(Ticket {
            v: VERSION,
            id: uuid::Uuid::new_v4().simple().to_string(),
            database: None,
            sql: String::new(),
            schema: b64(&ipc(schema, &[])?),
            result: Some(b64(&bytes)),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Ticket, Status> {
        let t: Ticket = serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("malformed ticket"))?;
        if t.v != VERSION {
            return Err(Status::invalid_argument(
                "a ticket of another server version",
            ));
        }
        Ok(t)
    }

    /// The schema GetFlightInfo announced.
    pub fn schema(&self) -> Result<SchemaRef, Status> {
        Ok(read_ipc(&unb64(&self.schema)?)?.0)
    }

    /// The carried rows, if the statement ran already.
    pub fn result(&self) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>, Status> {
        match &self.result {
            Some(text) => Ok(Some(read_ipc(&unb64(text)?)?)),
            None => Ok(None),
        }
    }
}

fn ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, Status> {
    let internal = |e: arrow::error::ArrowError| Status::internal(format!("cannot encode: {e}"));
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema).map_err(internal)?;
    for batch in batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    drop(writer);
    Ok(out)
}

fn read_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let bad =
        |e: arrow::error::ArrowError| Status::invalid_argument(format!("malformed ticket: {e}"));
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(bad)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(bad)?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn tickets_and_handles_round_trip() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let t = Ticket::query("SELECT 1".into(), Some("db".into()), &schema).unwrap();
        let back = Ticket::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.schema().unwrap(), schema);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![7]))])
            .unwrap();
        let carried = Ticket::carrying(&schema, std::slice::from_ref(&batch)).unwrap();
        let (_, rows) = Ticket::decode(&carried.encode())
            .unwrap()
            .result()
            .unwrap()
            .unwrap();
        assert_eq!(rows, vec![batch]);
        let mut p = Prepared::new("SELECT ?".into(), None);
        p.params = Some(vec![vec!["1".into()]]);
        assert_eq!(Prepared::decode(&p.encode()).unwrap(), p);
        assert!(Ticket::decode(b"\x00garbage").is_err());
        assert!(Prepared::decode(b"{}").is_err());
    }
}
