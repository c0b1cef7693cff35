<?php
/**
 * What an observer may say back about the order it synced: the id the order
 * has in the remote system, and where that system shows it. The bridge puts
 * one in every event it dispatches, as `order_sync_answer`; an observer that
 * knows the ERP's order number says
 *
 *     $observer->getEvent()->getOrderSyncAnswer()->setRemoteId($erpOrderNo);
 *
 * and the bridge sends it with the `synced` ack: order-sync keeps it, shows it
 * with the order and writes it in the history comment ("Order synced: erp
 * (SO-4711)"). Observers that ignore it change nothing.
 */

declare(strict_types=1);

namespace OrderSync\Bridge;

final class Answer
{
    /** order-sync keeps at most this many characters of a remote id. */
    public const MAX_REMOTE_ID = 255;
    public const MAX_REMOTE_URL = 2000;

    private ?string $remoteId = null;
    private ?string $remoteUrl = null;

    public function setRemoteId(string|int $id): self
    {
        $this->remoteId = (string) $id;
        return $this;
    }

    public function setRemoteUrl(string $url): self
    {
        $this->remoteUrl = $url;
        return $this;
    }

    public function getRemoteId(): ?string
    {
        return $this->remoteId;
    }

    public function getRemoteUrl(): ?string
    {
        return $this->remoteUrl;
    }

    /**
     * The ack fields, each only when order-sync would take it (an ack with
     * a bad one is refused whole, and the order would come again); what is
     * left out is named in `$problems`.
     *
     * @param list<string> $problems
     * @return array<string, string>
     */
    public function ackFields(array &$problems): array
    {
        $fields = [];
        $id = $this->remoteId === null ? null : trim($this->remoteId);
        if ($id !== null) {
            if ($id === '' || mb_strlen($id) > self::MAX_REMOTE_ID || preg_match('/[\x00-\x1f\x7f]/u', $id) !== 0) {
                $problems[] = 'remote id left out: it must be 1 to ' . self::MAX_REMOTE_ID . ' characters, without control characters';
            } else {
                $fields['remote_id'] = $id;
            }
        }
        $url = $this->remoteUrl;
        if ($url !== null) {
            $scheme = strtolower((string) parse_url($url, PHP_URL_SCHEME));
            if (!in_array($scheme, ['http', 'https'], true) || mb_strlen($url) > self::MAX_REMOTE_URL) {
                $problems[] = 'remote url left out: it must be an http(s):// URL of at most ' . self::MAX_REMOTE_URL . ' characters';
            } else {
                $fields['remote_url'] = $url;
            }
        }
        return $fields;
    }
}
