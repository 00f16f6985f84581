DROP TABLE gateway_customers;
