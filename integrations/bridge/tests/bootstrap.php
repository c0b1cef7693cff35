<?php
// php-amqplib from Composer, else from Debian's php-amqplib package; the
// bridge's own classes by PSR-4 from src/.
declare(strict_types=1);

require is_file(__DIR__ . '/../vendor/autoload.php')
    ? __DIR__ . '/../vendor/autoload.php'
    : 'PhpAmqpLib/autoload.php';

spl_autoload_register(function (string $class): void {
    $prefix = 'OrderSync\\Bridge\\';
    if (str_starts_with($class, $prefix)) {
        require __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    }
});
require __DIR__ . '/FakeMagento.php';
require __DIR__ . '/FakeAdmin.php';
