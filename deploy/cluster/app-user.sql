CREATE USER IF NOT EXISTS 'garrison_app'@'${app_host}' IDENTIFIED BY '${app_password}' ${require};
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE TEMPORARY TABLES ON `${database}`.* TO 'garrison_app'@'${app_host}';
GRANT SLAVE MONITOR ON *.* TO 'garrison_app'@'${app_host}';
