<?php
/**
 * bin/magento order-sync:consume <consumer> [--max-messages N]
 *
 * Runs the bridge for one order-sync consumer: each order delivered on
 * <prefix>.que.<consumer> is dispatched as `sales_order_place_after_que`
 * (the event name the message carries) with ['order' => $order], and acked
 * synced, or failed with the observer's exception message. Settings from
 * app/etc/env.php:
 *
 *   'order_sync' => ['url' => 'amqp://erp:secret@rabbit:5672/shop', 'prefix' => 'shop', 'consumer' => 'erp'],
 *
 * or the options below (which win). Stops cleanly on SIGTERM, so it runs
 * under supervisor, systemd or cron's consumers runner like Magento's own
 * queue consumers.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Console;

use Magento\Framework\App\Area;
use Magento\Framework\App\DeploymentConfig;
use Magento\Framework\App\State;
use OrderSync\Bridge\Bridge;
use OrderSync\Bridge\Settings;
use OrderSync\MagentoBridge\Model\Adapter;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputArgument;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

class ConsumeCommand extends Command
{
    public function __construct(
        private readonly DeploymentConfig $deploymentConfig,
        private readonly State $appState,
        private readonly Adapter $adapter,
    ) {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('order-sync:consume')
            ->setDescription('Dispatch the orders order-sync delivers to a consumer as sales_order_place_after_que, and ack them')
            ->addArgument('consumer', InputArgument::OPTIONAL, 'the consumer name (order_sync/consumer in env.php)')
            ->addOption('max-messages', null, InputOption::VALUE_REQUIRED, 'stop after this many orders', '0')
            ->addOption('url', null, InputOption::VALUE_REQUIRED, 'amqp:// URL of order-sync\'s broker')
            ->addOption('prefix', null, InputOption::VALUE_REQUIRED, 'order-sync\'s broker.prefix')
            ->addOption('area-code', null, InputOption::VALUE_REQUIRED, 'the Magento area the observers run in', Area::AREA_GLOBAL);
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        // As Magento's own queue:consumers:start: the global area, so the
        // observers of etc/events.xml run; --area-code frontend (or
        // adminhtml) adds that area's, for an observer declared only there.
        try {
            $this->appState->setAreaCode((string) $input->getOption('area-code'));
        } catch (\Magento\Framework\Exception\LocalizedException) {
            // The area is already set.
        }
        $config = (array) ($this->deploymentConfig->get('order_sync') ?? []);
        foreach (['url' => $input->getOption('url'), 'prefix' => $input->getOption('prefix'),
                     'consumer' => $input->getArgument('consumer')] as $key => $value) {
            if (is_string($value) && $value !== '') {
                $config[$key] = $value;
            }
        }
        try {
            $settings = Settings::fromArray($config);
        } catch (\InvalidArgumentException $e) {
            $output->writeln('<error>' . $e->getMessage() . ' (app/etc/env.php or options)</error>');
            return Command::INVALID;
        }
        $bridge = new Bridge($this->adapter, $settings);
        $handled = $bridge->run((int) $input->getOption('max-messages'));
        $output->writeln(sprintf('order-sync: %d order(s) handled for %s', $handled, $settings->consumer));
        return Command::SUCCESS;
    }
}
