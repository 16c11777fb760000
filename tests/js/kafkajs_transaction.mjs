// A kafkajs transactional producer against the broker at argv[2], which does not serve
// transactions yet: prints how long the first transaction took to fail and the error.
import kafkajs from 'kafkajs'

const { Kafka, logLevel } = kafkajs
const [, , broker] = process.argv
const kafka = new Kafka({ clientId: 'edplog-kafkajs-txn', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 10 } })
const producer = kafka.producer({ transactionalId: 'js-txn', idempotent: true, maxInFlightRequests: 1 })
const started = Date.now()
let error = null
try {
  await producer.connect()
  const txn = await producer.transaction()
  await txn.abort()
} catch (e) {
  error = { name: e.name, type: e.type ?? null, message: e.message, retriable: e.retriable ?? null }
}
await producer.disconnect().catch(() => {})
console.log(JSON.stringify({ seconds: (Date.now() - started) / 1000, error }))
