<?php
/**
 * What this bridge acked `synced`, by message_id, kept in a table of its own
 * in Magento's database: a repeat of a synced message (order-sync sends one
 * after a crash on either side, or the broker gives a delivery back) is acked
 * again without running the observers a second time. Magento observers are
 * rarely idempotent; the original module never ran one twice for a synced
 * order, and neither does the bridge.
 *
 * The message_id is written (and committed) after the observers ran and
 * before the ack is published: if the process dies between the two, the
 * delivery comes again and is recognised. The one window left is a crash
 * while the observers run or before this commit: then they run again, as
 * they would have in the original module.
 *
 * Rows older than `keep_days` are deleted, a batch at a time, at most once an
 * hour: longer than any re-delivery of one message (order-sync parks a row
 * after relay.max_attempts).
 */

declare(strict_types=1);

namespace OrderSync\Bridge;

final class SyncedLog
{
    /** Rows deleted per statement when old ones are cleaned. */
    private const CLEAN_BATCH = 1000;

    private float $cleanedAt = 0.0;

    public function __construct(
        private readonly \PDO $db,
        /** The table's name, with Magento's table prefix. */
        private readonly string $table,
        private readonly int $keepDays = 30,
    ) {
        if (!preg_match('/^[A-Za-z0-9_]{1,64}$/', $table)) {
            throw new \InvalidArgumentException("order_sync: table name `$table` is not a plain table name");
        }
        $this->db->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
    }

    /** Creates the table when it is not there (Magento's own setup may have). */
    public function ensureTable(): void
    {
        $this->db->exec(
            "CREATE TABLE IF NOT EXISTS `{$this->table}` (
                message_id VARCHAR(255) NOT NULL PRIMARY KEY,
                consumer VARCHAR(64) NOT NULL,
                synced_at DATETIME NOT NULL,
                remote_id VARCHAR(255) NULL,
                remote_url VARCHAR(2000) NULL,
                KEY {$this->table}_synced_at (synced_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        // A table made by an earlier bridge, before the answer was kept.
        $columns = $this->db->query("SHOW COLUMNS FROM `{$this->table}`")->fetchAll(\PDO::FETCH_COLUMN);
        if (!in_array('remote_id', $columns, true)) {
            $this->db->exec(
                "ALTER TABLE `{$this->table}` ADD COLUMN remote_id VARCHAR(255) NULL, ADD COLUMN remote_url VARCHAR(2000) NULL"
            );
        }
    }

    /**
     * What was answered for a synced message (`remote_id`, `remote_url`,
     * each only when there was one), or null when it was not synced here.
     *
     * @return array<string, string>|null
     */
    public function find(string $messageId): ?array
    {
        $q = $this->db->prepare("SELECT remote_id, remote_url FROM `{$this->table}` WHERE message_id = ?");
        $q->execute([$messageId]);
        $row = $q->fetch(\PDO::FETCH_ASSOC);
        return $row === false ? null : array_filter($row, fn ($v) => $v !== null);
    }

    /**
     * Records a synced message with what its observer answered; a second
     * time changes nothing.
     *
     * @param array<string, string> $answer `remote_id`, `remote_url`
     */
    public function remember(string $messageId, string $consumer, array $answer = []): void
    {
        $this->db->prepare(
            "INSERT IGNORE INTO `{$this->table}` (message_id, consumer, synced_at, remote_id, remote_url) "
            . 'VALUES (?, ?, UTC_TIMESTAMP(), ?, ?)'
        )->execute([$messageId, $consumer, $answer['remote_id'] ?? null, $answer['remote_url'] ?? null]);
        $this->cleanIfDue();
    }

    /** Deletes rows older than keep_days; returns how many went. */
    public function clean(): int
    {
        $gone = 0;
        do {
            $n = $this->db->exec(
                "DELETE FROM `{$this->table}` WHERE synced_at < UTC_TIMESTAMP() - INTERVAL {$this->keepDays} DAY LIMIT "
                . self::CLEAN_BATCH
            );
            $gone += (int) $n;
        } while ($n === self::CLEAN_BATCH);
        $this->cleanedAt = microtime(true);
        return $gone;
    }

    private function cleanIfDue(): void
    {
        if (microtime(true) - $this->cleanedAt >= 3600) {
            $this->clean();
        }
    }
}
