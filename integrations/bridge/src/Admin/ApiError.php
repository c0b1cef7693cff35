<?php
/**
 * What went wrong talking to order-sync, in words for the admin message: the
 * API's own error text, a refused token, or order-sync not reachable.
 * Nothing was changed when one is thrown.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

final class ApiError extends \RuntimeException
{
}
