<?php
/**
 * The grid and the order tab as HTML, the same for both modules: each
 * module's block passes its URLs and form key and prints the result. Every
 * value is escaped; the forms post with Magento's form key.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

final class Html
{
    /**
     * @param array $view from Controller::grid()
     * @param array{grid: string, action: string, order: callable(int): string} $urls
     */
    public static function grid(array $view, array $urls, string $formKey): string
    {
        $f = $view['filter'];
        $out = '<div class="order-sync">';
        if ($view['error'] !== null) {
            $out .= '<div class="message message-error error"><div>' . self::e($view['error']) . '</div></div>';
        }
        $out .= '<form method="get" action="' . self::e($urls['grid']) . '" class="order-sync-filter">'
            . '<label>Order # <input name="increment_id" value="' . self::e($f['increment_id'] ?? '') . '"></label> '
            . '<label>State ' . self::select('state', ['' => 'any'] + array_combine(OrderRows::STATES, OrderRows::STATES), $f['state'] ?? '') . '</label> '
            . '<label>Sync service ' . self::select('consumer', ['' => 'any'] + array_combine($view['consumers'], $view['consumers']), $f['consumer'] ?? '') . '</label> '
            . '<button type="submit">Filter</button></form>';
        $out .= '<form method="post" action="' . self::e($urls['action']) . '">'
            . '<input type="hidden" name="form_key" value="' . self::e($formKey) . '">'
            . '<div class="grid"><table class="data-grid data order-sync-grid" id="order-sync-grid"><thead><tr class="headings">'
            . '<th></th><th>Order #</th><th>Placed</th><th>Sync service</th><th>State</th><th>Attempts</th>'
            . '<th>Last error</th><th>Waits behind</th><th>Remote id</th><th>Events</th></tr></thead><tbody>';
        if ($view['rows'] === []) {
            $out .= '<tr><td colspan="10">' . ($view['error'] === null ? 'No orders.' : '') . '</td></tr>';
        }
        foreach ($view['rows'] as $r) {
            $out .= '<tr data-entity-id="' . $r['entity_id'] . '" data-consumer="' . self::e($r['consumer']) . '" data-state="' . self::e($r['state']) . '">'
                . '<td><input type="checkbox" name="entity_ids[]" value="' . $r['entity_id'] . '"></td>'
                . '<td><a href="' . self::e(($urls['order'])($r['entity_id'])) . '">' . self::e($r['increment_id'] ?? (string) $r['entity_id']) . '</a></td>'
                . '<td>' . self::e($r['placed_at'] ?? '') . '</td>'
                . '<td>' . self::e($r['consumer']) . '</td>'
                . '<td class="state state-' . self::e($r['state']) . '">' . self::e($r['state']) . '</td>'
                . '<td>' . $r['attempts'] . '</td>'
                . '<td>' . self::e($r['last_error'] ?? '') . '</td>'
                . '<td>' . ($r['blocked_by'] === null ? '' : 'event #' . (int) $r['blocked_by']) . '</td>'
                . '<td>' . self::remote($r) . '</td>'
                . '<td>' . $r['events'] . ($r['open'] > 0 ? ' (' . $r['open'] . ' open)' : '') . '</td></tr>';
        }
        $out .= '</tbody></table></div>';
        if ($view['next'] !== null) {
            $next = $urls['grid'] . (str_contains($urls['grid'], '?') ? '&' : '?')
                . http_build_query($f + ['before' => $view['next']]);
            $out .= '<p><a class="order-sync-next" href="' . self::e($next) . '">Older orders</a></p>';
        }
        $out .= '<p>' . self::actions(array_combine($view['consumers'], $view['consumers'])) . '</p></form></div>';
        return $out;
    }

    /**
     * @param array $view from Controller::orderTab()
     */
    public static function tab(array $view, string $actionUrl, string $formKey): string
    {
        $out = '<div class="order-sync order-sync-tab">';
        if ($view['error'] !== null) {
            return $out . '<div class="message message-error error"><div>' . self::e($view['error']) . '</div></div></div>';
        }
        if ($view['missing']) {
            return $out . '<p>order-sync has not captured this order (placed before it started, or left out by its capture.filter); a backfill can give it to a sync service.</p></div>';
        }
        $out .= '<div class="grid"><table class="data-grid data order-sync-rows"><thead><tr class="headings"><th>Sync service</th><th>#</th><th>Event</th>'
            . '<th>State</th><th>Attempts</th><th>Last error</th><th>Remote id</th><th>Synced</th></tr></thead><tbody>';
        $consumers = [];
        foreach ($view['rows'] as $r) {
            $consumers[$r['consumer']] = $r['consumer'];
            $out .= '<tr data-consumer="' . self::e($r['consumer']) . '" data-seq="' . $r['seq'] . '" data-state="' . self::e($r['state']) . '">'
                . '<td>' . self::e($r['consumer']) . '</td><td>' . $r['seq'] . '</td><td>' . self::e($r['event']) . '</td>'
                . '<td class="state state-' . self::e($r['state']) . '">' . self::e($r['state'])
                . ($r['blocked_by'] === null ? '' : ' (waits behind #' . (int) $r['blocked_by'] . ')') . '</td>'
                . '<td>' . $r['attempts'] . '</td><td>' . self::e($r['last_error'] ?? '') . '</td>'
                . '<td>' . self::remote($r) . '</td><td>' . self::e($r['synced_at'] ?? '') . '</td></tr>';
        }
        $out .= '</tbody></table></div>';
        $out .= '<form method="post" action="' . self::e($actionUrl) . '">'
            . '<input type="hidden" name="form_key" value="' . self::e($formKey) . '">'
            . '<input type="hidden" name="entity_id" value="' . (int) $view['entity_id'] . '">'
            . self::actions($consumers) . '</form></div>';
        return $out;
    }

    /** The action picker: what, for which sync service (or all). */
    private static function actions(array $consumers): string
    {
        return self::select('action', Controller::ACTIONS, '') . ' for '
            . self::select('consumer', ['' => 'every sync service'] + $consumers, '')
            . ' <button type="submit">Apply</button>';
    }

    private static function remote(array $r): string
    {
        if (($r['remote_id'] ?? null) === null) {
            return '';
        }
        $url = $r['remote_url'] ?? null;
        return $url !== null && preg_match('#^https?://#i', $url)
            ? '<a href="' . self::e($url) . '" rel="noopener noreferrer" target="_blank">' . self::e($r['remote_id']) . '</a>'
            : self::e($r['remote_id']);
    }

    /** @param array<string, string> $options value => label */
    private static function select(string $name, array $options, string $selected): string
    {
        $out = '<select name="' . self::e($name) . '">';
        foreach ($options as $value => $label) {
            $out .= '<option value="' . self::e((string) $value) . '"' . ((string) $value === $selected ? ' selected' : '') . '>'
                . self::e((string) $label) . '</option>';
        }
        return $out . '</select>';
    }

    private static function e(string $text): string
    {
        return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }
}
